//! MySQL for the tests: a database per test on the server the README's variable names, and a
//! MariaDB of a test's own that it may kill.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::{free_port, wait_for, MYSQL_URL_ENV};

/// Creates a fresh MySQL database for one test, when the MySQL URL is set. Under CI the URL
/// must be set: a MySQL test that silently skips there would prove nothing.
pub fn mysql_database(tag: &str) -> Option<String> {
    let Ok(base) = std::env::var(MYSQL_URL_ENV) else {
        assert!(
            std::env::var("CI").is_err(),
            "{MYSQL_URL_ENV} must be set under CI"
        );
        eprintln!("{MYSQL_URL_ENV} is not set: skipping the MySQL variant");
        return None;
    };
    let db = format!("damocles_{tag}_{}", std::process::id());
    let (server, _) = base
        .rsplit_once('/')
        .expect("mysql url like mysql://root@127.0.0.1:3306/test");
    let hostport = server.rsplit('@').next().unwrap_or("127.0.0.1:3306");
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "3306"));
    let sql = format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db};");
    let status = Command::new("mysql")
        .args(["-h", host, "-P", port, "-u", "root", "-e", &sql])
        .status()
        .expect("mysql client");
    assert!(status.success(), "create database {db}");
    Some(format!("{server}/{db}"))
}

/// Asserts that each claimed job (`(<id>@<attempt>, c)` as its claim answered) is held in
/// `wdpost_jobs` under that attempt by `claimer-<c>`.
pub fn assert_held_by_claimers(url: &str, claimed: &[(String, usize)]) {
    let held: std::collections::HashSet<String> =
        mysql_exec(url, "SELECT id, attempt, worker_name FROM wdpost_jobs;")
            .lines()
            .map(String::from)
            .collect();
    for (wire, c) in claimed {
        let (id, attempt) = wire
            .split_once('@')
            .expect("a claim's id is <id>@<attempt>");
        let row = format!("{id}\t{attempt}\tclaimer-{c}");
        assert!(held.contains(&row), "{row} is not in the table");
    }
}

/// Runs `sql` (any number of statements) with the `mysql` client on the database of `url`, and
/// returns what it printed (tab-separated rows, no header).
pub fn mysql_exec(url: &str, sql: &str) -> String {
    use std::io::Write as _;
    let (server, db) = url.rsplit_once('/').expect("mysql url with a database");
    let hostport = server.rsplit('@').next().unwrap_or("127.0.0.1:3306");
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "3306"));
    let mut child = Command::new("mysql")
        .args(["-h", host, "-P", port, "-u", "root", "-N", "-B", db])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("mysql client");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(sql.as_bytes())
        .expect("write sql");
    let out = child.wait_with_output().expect("mysql client");
    assert!(
        out.status.success(),
        "mysql failed on: {}",
        &sql[..sql.len().min(200)]
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// `n` ready WindowPoSt jobs `fake-00000`... with a small input of no sectors: enough for the
/// claim path, which reads only the rows.
pub fn insert_fake_jobs(url: &str, n: usize) {
    let input = json!({"Sectors": [], "MinerId": 10000, "ProofType": "StackedDrgWindow2KiBV1_2", "Seed": vec![0u8; 32]}).to_string();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|i| {
                format!(
                    "('fake-{i:05}', 10000, {i}, '0', 'StackedDrgWindow2KiBV1_2', 0, 'ReadyToRun', 0, NOW(), NOW(), NOW(), '{input}')"
                )
            })
            .collect();
        mysql_exec(
            url,
            &format!(
                "INSERT INTO wdpost_jobs (id, miner_id, deadline_idx, partitions, proof_type, sectors, state, try_num, deadline_open_at, created_at, updated_at, input) VALUES {};",
                rows.join(",")
            ),
        );
    }
}

/// A MariaDB server of a test's own (its data in a temporary directory, on a free port), which
/// the test may kill and start again: for faults of the database itself.
pub struct OwnMariaDb {
    dir: PathBuf,
    pub port: u16,
    server: Option<std::process::Child>,
    /// Options of its own (a Galera node's).
    extra: Vec<String>,
}

impl OwnMariaDb {
    /// None where MariaDB is not installed (never under CI, where it must be).
    pub fn start(dir: &Path) -> Option<OwnMariaDb> {
        Self::start_with(dir, free_port(), Vec::new())
    }

    /// A server on `port` with more options (`extra`).
    fn start_with(dir: &Path, port: u16, extra: Vec<String>) -> Option<OwnMariaDb> {
        let installed = Path::new("/usr/sbin/mariadbd").exists();
        if !installed {
            assert!(
                std::env::var("CI").is_err(),
                "MariaDB must be installed under CI"
            );
            eprintln!("MariaDB is not installed: skipping");
            return None;
        }
        std::fs::create_dir_all(dir).expect("db dir");
        let root = nix::unistd::Uid::effective().is_root();
        let user = if root { "mysql" } else { "" };
        if root {
            let _ = Command::new("chown")
                .args(["-R", "mysql:", &dir.display().to_string()])
                .status();
            // mysqld must reach its directory through the test's temporary one.
            let _ = Command::new("chmod")
                .args(["755", &dir.parent().unwrap_or(dir).display().to_string()])
                .status();
        }
        let mut install = Command::new("mariadb-install-db");
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        if root {
            install.arg(format!("--user={user}"));
        }
        let out = install.output().expect("mariadb-install-db");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut db = OwnMariaDb {
            dir: dir.to_path_buf(),
            port,
            server: None,
            extra,
        };
        db.restart();
        let sock = dir.join("mysqld.sock");
        let out = Command::new("mariadb")
            .arg("--no-defaults")
            .arg(format!("--socket={}", sock.display()))
            .args(["-uroot", "-e"])
            .arg(
                "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; \
                 GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; \
                 CREATE DATABASE IF NOT EXISTS test;",
            )
            .output()
            .expect("mariadb client");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(db)
    }

    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/test", self.port)
    }

    /// Starts the server (again) on the same data and port, and waits until it answers.
    pub fn restart(&mut self) {
        let mut cmd = Command::new("/usr/sbin/mariadbd");
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", self.dir.join("data").display()))
            .arg(format!(
                "--socket={}",
                self.dir.join("mysqld.sock").display()
            ))
            .arg(format!(
                "--pid-file={}",
                self.dir.join("mysqld.pid").display()
            ))
            .arg(format!("--port={}", self.port))
            .args(["--bind-address=127.0.0.1", "--skip-name-resolve"])
            .args([
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_general_ci",
            ]);
        if nix::unistd::Uid::effective().is_root() {
            cmd.arg("--user=mysql");
        }
        cmd.args(&self.extra);
        let log = std::fs::File::create(self.dir.join("mariadbd.log")).expect("log");
        let child = cmd
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("mariadbd");
        self.server = Some(child);
        let sock = self.dir.join("mysqld.sock");
        wait_for(
            Duration::from_secs(60),
            "MariaDB to accept connections",
            || {
                let ok = Command::new("mariadb")
                    .arg("--no-defaults")
                    .arg(format!("--socket={}", sock.display()))
                    .args(["-uroot", "-e", "SELECT 1"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
                ok.then_some(())
            },
        );
    }

    /// kill -9 of the server: a crash or a pulled plug, as far as the manager can tell.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A MariaDB Galera cluster of `nodes` servers on loopback ports, each in `<dir>/node<i>`: the
/// first bootstraps it, the others join it (a full copy by rsync). None where Galera is not
/// installed (never under CI, where it must be).
pub fn galera_cluster(dir: &Path, nodes: usize) -> Option<Vec<OwnMariaDb>> {
    const PROVIDER: &str = "/usr/lib/galera/libgalera_smm.so";
    if !Path::new(PROVIDER).exists() {
        assert!(
            std::env::var("CI").is_err(),
            "Galera (galera-4) must be installed under CI"
        );
        eprintln!("Galera is not installed: skipping");
        return None;
    }
    // Per node: SQL, group communication, incremental and full state transfer.
    let ports: Vec<[u16; 4]> = (0..nodes)
        .map(|_| [free_port(), free_port(), free_port(), free_port()])
        .collect();
    let members: Vec<String> = ports
        .iter()
        .map(|p| format!("127.0.0.1:{}", p[1]))
        .collect();
    let mut cluster = Vec::new();
    for (i, [sql, gcomm, ist, sst]) in ports.iter().enumerate() {
        let mut extra: Vec<String> = [
            "--binlog-format=ROW",
            "--default-storage-engine=InnoDB",
            "--innodb-autoinc-lock-mode=2",
            "--innodb-buffer-pool-size=64M",
            "--innodb-flush-log-at-trx-commit=2",
            "--wsrep-on=ON",
            "--wsrep-cluster-name=damocles-test",
            "--wsrep-sst-method=rsync",
        ]
        .map(String::from)
        .into();
        extra.extend([
            format!("--wsrep-provider={PROVIDER}"),
            format!("--wsrep-cluster-address=gcomm://{}", members.join(",")),
            format!("--wsrep-node-address=127.0.0.1:{gcomm}"),
            format!(
                "--wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:{gcomm};ist.recv_addr=127.0.0.1:{ist};gcache.size=32M"
            ),
            format!("--wsrep-sst-receive-address=127.0.0.1:{sst}"),
        ]);
        if i == 0 {
            extra.push("--wsrep-new-cluster".into());
        }
        cluster.push(OwnMariaDb::start_with(
            &dir.join(format!("node{i}")),
            *sql,
            extra,
        )?);
    }
    // Each node is up once it is in the full cluster, has caught up (Synced: a joiner still
    // taking its copy counts in the cluster's size) and takes queries.
    let want =
        format!("wsrep_cluster_size\t{nodes}\nwsrep_local_state_comment\tSynced\nwsrep_ready\tON");
    for db in &cluster {
        wait_for(
            Duration::from_secs(90),
            "every Galera node in the cluster and synced",
            || {
                let status = mysql_exec(
                    &db.url(),
                    "SELECT LOWER(VARIABLE_NAME), VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME IN ('WSREP_CLUSTER_SIZE', 'WSREP_LOCAL_STATE_COMMENT', 'WSREP_READY') ORDER BY 1;",
                );
                (status.trim() == want).then_some(())
            },
        );
    }
    Some(cluster)
}

impl Drop for OwnMariaDb {
    fn drop(&mut self) {
        self.kill();
    }
}
