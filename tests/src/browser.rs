//! A real browser for the console's tests: Debian's `chromium`, headless, driven through
//! `chromedriver` by the W3C WebDriver protocol (JSON over HTTP, so reqwest is the client).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::{free_port, poll, spawn, Proc};

/// The key under which WebDriver names an element.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The first of `names` found on `PATH` or in `/usr/bin`, `/usr/lib/chromium`.
fn find_exe(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs = path.split(':').chain(["/usr/bin", "/usr/lib/chromium"]);
    let dirs: Vec<&str> = dirs.collect();
    names
        .iter()
        .flat_map(|n| dirs.iter().map(move |d| Path::new(d).join(n)))
        .find(|p| p.is_file())
}

pub struct Browser {
    session: String,
    base: String,
    http: reqwest::blocking::Client,
    // Dropped after the session is closed.
    _driver: Proc,
}

impl Browser {
    /// A headless chromium of 1366×768 (the console's target screen) with its profile under
    /// `dir`. None when chromium or chromedriver is missing; under CI they must be there.
    pub fn start(dir: &Path) -> Option<Browser> {
        let found = (
            find_exe(&["chromium", "chromium-browser", "google-chrome"]),
            find_exe(&["chromedriver"]),
        );
        let (Some(chrome), Some(driver)) = found else {
            assert!(
                std::env::var("CI").is_err(),
                "chromium and chromedriver must be installed under CI (Debian: chromium chromium-driver)"
            );
            eprintln!("chromium or chromedriver is missing: skipping the browser test");
            return None;
        };
        let port = free_port();
        let mut cmd = Command::new(driver);
        cmd.arg(format!("--port={port}"));
        let mut proc = spawn(&mut cmd, dir.join("chromedriver.log"));
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        proc.wait_up(Duration::from_secs(30), "chromedriver", || {
            http.get(format!("{base}/status"))
                .send()
                .ok()
                .filter(|r| r.status().is_success())
        });
        let profile = dir.join("chromium-profile");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chrome,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1366,768",
                         "--force-device-scale-factor=1",
                         format!("--user-data-dir={}", profile.display())],
            },
        }}});
        let res: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .and_then(|r| r.json())
            .expect("a WebDriver session");
        let session = res["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {res}"))
            .to_string();
        Some(Browser {
            session,
            base,
            http,
            _driver: proc,
        })
    }

    /// One WebDriver command; its `value`, or the error it answered.
    fn cmd(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().expect("chromedriver answers");
        let ok = res.status().is_success();
        let v: Value = res.json().expect("WebDriver JSON");
        if ok {
            Ok(v["value"].clone())
        } else {
            Err(v["value"].clone())
        }
    }

    fn post(&self, path: &str, body: Value) -> Value {
        self.cmd(reqwest::Method::POST, path, Some(body))
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"))
    }

    pub fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url }));
    }

    pub fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None)
            .expect("url")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The elements `css` selects now.
    pub fn find_all(&self, css: &str) -> Vec<String> {
        let v = self.post("/elements", json!({"using": "css selector", "value": css}));
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits for an element `css` selects.
    pub fn wait(&self, css: &str) -> String {
        poll(Duration::from_secs(20), || {
            self.find_all(css).into_iter().next()
        })
        .unwrap_or_else(|| {
            panic!(
                "no element {css} within 20s on {}; the page says:\n{}",
                self.url(),
                self.page_text()
            )
        })
    }

    /// Waits until the text of the first element `css` selects satisfies `ok`; returns it.
    pub fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let found = poll(Duration::from_secs(20), || {
            let el = self.find_all(css).into_iter().next()?;
            // The page may redraw between finding and reading: read again next time.
            let t = self.text(&el).ok()?;
            ok(&t).then_some(t)
        });
        found.unwrap_or_else(|| {
            panic!(
                "{css} did not show {what} within 20s on {}; the page says:\n{}",
                self.url(),
                self.page_text()
            )
        })
    }

    /// The rendered text of an element (Err when the page redrew it away).
    pub fn text(&self, el: &str) -> Result<String, Value> {
        self.cmd(reqwest::Method::GET, &format!("/element/{el}/text"), None)
            .map(|v| v.as_str().unwrap_or_default().to_string())
    }

    /// All the text the page shows.
    pub fn page_text(&self) -> String {
        self.find_all("body")
            .first()
            .and_then(|b| self.text(b).ok())
            .unwrap_or_default()
    }

    /// Clicks the first element `css` selects, once it is there (again if the page redrew it
    /// between finding and clicking).
    pub fn click(&self, css: &str) {
        let done = poll(Duration::from_secs(20), || {
            let el = self.find_all(css).into_iter().next()?;
            self.cmd(
                reqwest::Method::POST,
                &format!("/element/{el}/click"),
                Some(json!({})),
            )
            .ok()
        });
        done.unwrap_or_else(|| {
            panic!(
                "could not click {css}; the page says:\n{}",
                self.page_text()
            )
        });
    }

    /// Types `text` into the element `css` selects.
    pub fn type_into(&self, css: &str, text: &str) {
        let el = self.wait(css);
        self.post(&format!("/element/{el}/clear"), json!({}));
        self.post(&format!("/element/{el}/value"), json!({ "text": text }));
    }

    /// Runs `script` in the page (its `return` is the value).
    pub fn execute(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []}))
    }

    /// Accepts the page's `confirm()` dialog.
    pub fn accept_dialog(&self) {
        let ok = poll(Duration::from_secs(10), || {
            self.cmd(reqwest::Method::POST, "/alert/accept", Some(json!({})))
                .ok()
        });
        ok.expect("a dialog to accept");
    }

    /// Sets a cookie for the page's site.
    pub fn set_cookie(&self, name: &str, value: &str) {
        self.post("/cookie", json!({"cookie": {"name": name, "value": value}}));
    }

    pub fn delete_cookies(&self) {
        self.cmd(reqwest::Method::DELETE, "/cookie", None)
            .expect("delete cookies");
    }

    /// The cookies the browser holds for the page's site, as WebDriver reports them.
    pub fn cookies(&self) -> Vec<Value> {
        self.cmd(reqwest::Method::GET, "/cookie", None)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    /// A PNG of the window.
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let v = self
            .cmd(reqwest::Method::GET, "/screenshot", None)
            .expect("screenshot");
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("base64 PNG");
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send();
    }
}
