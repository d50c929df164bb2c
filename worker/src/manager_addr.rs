//! The manager's address as damocles writes it: a multiaddr (`/ip4/127.0.0.1/tcp/1789[/http]`)
//! or a URL, turned into the JSON-RPC endpoint `http://host:port/rpc/v0`.

/// The `/rpc/v0` URL for `raw`.
pub fn to_url(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    if raw.starts_with("http://") || raw.starts_with("https://") {
        let base = raw.trim_end_matches('/');
        return Ok(if base.ends_with("/rpc/v0") {
            base.to_string()
        } else {
            format!("{base}/rpc/v0")
        });
    }
    let parts: Vec<&str> = raw.split('/').collect();
    let bad = || {
        format!("{raw:?} is not a manager address; use a multiaddr like /ip4/127.0.0.1/tcp/1789 or a URL like http://127.0.0.1:1789")
    };
    match parts.as_slice() {
        ["", proto @ ("ip4" | "ip6" | "dns" | "dns4" | "dns6"), host, "tcp", port, rest @ ..] => {
            let port: u16 = port.parse().map_err(|_| bad())?;
            let scheme = match rest {
                [] | ["http"] => "http",
                ["https"] => "https",
                _ => return Err(bad()),
            };
            let host = if *proto == "ip6" {
                format!("[{host}]")
            } else {
                host.to_string()
            };
            Ok(format!("{scheme}://{host}:{port}/rpc/v0"))
        }
        _ => Err(bad()),
    }
}

/// `host:port` of the manager, to find the local address that reaches it.
pub fn host_port(url: &str) -> Option<String> {
    let rest = url.split("://").nth(1)?;
    Some(rest.split('/').next()?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manager_addresses() {
        let ok = [
            ("/ip4/127.0.0.1/tcp/1789", "http://127.0.0.1:1789/rpc/v0"),
            ("/ip4/10.0.0.2/tcp/1789/http", "http://10.0.0.2:1789/rpc/v0"),
            ("/dns/manager/tcp/80/https", "https://manager:80/rpc/v0"),
            ("/ip6/::1/tcp/1789", "http://[::1]:1789/rpc/v0"),
            ("http://127.0.0.1:1789", "http://127.0.0.1:1789/rpc/v0"),
            (
                "http://127.0.0.1:1789/rpc/v0",
                "http://127.0.0.1:1789/rpc/v0",
            ),
        ];
        for (raw, want) in ok {
            assert_eq!(to_url(raw).as_deref(), Ok(want), "{raw}");
        }
        for bad in [
            "127.0.0.1:1789",
            "/ip4/1.2.3.4/udp/1",
            "/ip4/1.2.3.4/tcp/x",
            "",
        ] {
            assert!(to_url(bad).is_err(), "{bad}");
        }
        assert_eq!(
            host_port("http://127.0.0.1:1789/rpc/v0").as_deref(),
            Some("127.0.0.1:1789")
        );
    }
}
