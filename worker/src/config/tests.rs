use super::*;

const BASE: &str = r#"
[sector_manager]
rpc_client.addr = "/ip4/127.0.0.1/tcp/1789"
[[attached]]
location = "/tmp/remote"
"#;

fn parse(extra: &str) -> Result<Config, ConfigError> {
    Config::parse(&format!("{BASE}\n{extra}"), "worker.toml")
}

#[test]
fn every_example_config_parses() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../config-examples"));
    let files = config_file::example_files(dir, "worker").unwrap();
    for path in &files {
        Config::load(path).unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(files.len() >= 2, "found {} worker examples", files.len());
}

#[test]
fn the_mock_config_has_three_sealers_snapup_rebuild_and_unseal_threads_a_wdpost_slot_and_a_store() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config-examples/worker.mock.toml"
    );
    let cfg = Config::load(Path::new(dir)).unwrap();
    let plans: Vec<_> = cfg
        .sealing_thread
        .iter()
        .map(|t| t.plan.clone().unwrap_or_else(|| "sealer".into()))
        .collect();
    assert_eq!(
        plans,
        ["sealer", "sealer", "sealer", "snapup", "rebuild", "unseal", "wdpost"]
    );
    assert_eq!(cfg.attached.len(), 1);
    let wd = cfg.sealing_for(&cfg.sealing_thread[6]);
    assert_eq!(wd.recover_interval, Duration::from_secs(15));
    assert_eq!(
        wd.max_retries, 3,
        "global [sealing] applies under the thread override"
    );
}

#[test]
fn defaults_fill_what_is_left_out() {
    let cfg = parse("[[sealing_thread]]\nlocation = \"/s1\"").unwrap();
    let s = cfg.sealing_for(&cfg.sealing_thread[0]);
    assert_eq!(
        (
            s.max_retries,
            s.seal_interval,
            s.recover_interval,
            s.rpc_polling_interval
        ),
        (
            5,
            Duration::from_secs(30),
            Duration::from_secs(60),
            Duration::from_secs(180)
        )
    );
    assert_eq!(cfg.rpc_listen(), "0.0.0.0:17890");
    assert_eq!(cfg.worker.ping_interval, None);
}

#[test]
fn bad_configs_name_the_key_and_the_reason() {
    let cases = [
        (
            "[worker]\nnmae = \"x\"",
            "worker.nmae",
            "unknown field `nmae`",
        ),
        (
            "[worker]\nping_interval = \"30x\"",
            "worker.ping_interval",
            "expected a duration",
        ),
        (
            "[worker]\nping_interval = 30",
            "worker.ping_interval",
            "invalid type",
        ),
        (
            "[worker]\nping_interval = \"0s\"",
            "worker.ping_interval",
            "must be longer than 0s",
        ),
        (
            "[sealing]\nrpc_polling_interval = \"0s\"",
            "sealing.rpc_polling_interval",
            "must be longer than 0s",
        ),
        (
            "[[processors.pc1]]\ntimeout = \"0s\"",
            "processors.pc1[0].timeout",
            "must be longer than 0s",
        ),
        (
            "[[processors.pc1]]\ntimeout = \"soon\"",
            "processors.pc1[0].timeout",
            "expected a duration",
        ),
        (
            "[worker.rpc_server]\nport = \"x\"",
            "worker.rpc_server.port",
            "invalid type",
        ),
        (
            "[sealing]\nmax_retries = -1",
            "sealing.max_retries",
            "invalid value",
        ),
        (
            "[[sealing_thread]]\nplan = \"sealer\"",
            "sealing_thread[0].location",
            "needs a location",
        ),
        (
            "[[sealing_thread]]\nlocation = \"/a\"\nplan = \"bogus\"",
            "sealing_thread[0].plan",
            "valid plans: sealer, snapup, rebuild, unseal, wdpost",
        ),
        (
            "[sealing]\nallowed_sizes = [\"3KiB\"]",
            "sealing.allowed_sizes[0]",
            "not a sector size",
        ),
        (
            "[sealing]\ndisk_quota = \"lots\"",
            "sealing.disk_quota",
            "bad size",
        ),
        (
            "[[sealing_thread]]\nlocation = \"/a\"\nsealing.disk_quota = \"1TiB\"",
            "sealing_thread[0].sealing.disk_quota",
            "per worker",
        ),
        (
            "[processors.limitation.concurrent]\npc9 = 1",
            "processors.limitation.concurrent.pc9",
            "unknown stage",
        ),
        (
            "[[processors.pc1]]\nlocks = [\"gpu\"]",
            "processors.pc1[0].locks",
            "not declared",
        ),
        (
            "[[processors.pc1]]\ncgroup.cpuset = \"3-1\"",
            "processors.pc1[0].cgroup.cpuset",
            "bad cpuset",
        ),
        (
            "[[sealing_thread]]\nlocation = \"/a\"\n[[sealing_thread]]\nlocation = \"/a\"",
            "sealing_thread[1].location",
            "used by another thread",
        ),
    ];
    for (extra, key, reason) in cases {
        let e = parse(extra).expect_err(extra);
        assert_eq!(e.file, "worker.toml");
        assert_eq!(e.key, key, "{extra}: {e}");
        assert!(e.reason.contains(reason), "{extra}: {e}");
        assert!(!e.to_string().contains('\n'), "one line: {e}");
    }
}

#[test]
fn a_missing_manager_address_is_refused() {
    let e = Config::parse("[worker]\nname = \"a\"", "w.toml").unwrap_err();
    assert!(e.reason.contains("sector_manager"), "{e}");
    let e = Config::parse("[sector_manager]\nrpc_client.addr = \"nowhere\"", "w.toml").unwrap_err();
    assert_eq!(e.key, "sector_manager.rpc_client.addr");
    for bad in ["[]", "[\"/ip4/127.0.0.1/tcp/1789\", \"nowhere\"]", "5"] {
        let e = Config::parse(
            &format!("[sector_manager]\nrpc_client.addr = {bad}"),
            "w.toml",
        )
        .unwrap_err();
        assert!(
            e.key.starts_with("sector_manager.rpc_client.addr"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn several_managers_are_tried_in_the_order_written() {
    let text = "[sector_manager]\nrpc_client.addr = [\"/ip4/127.0.0.1/tcp/1789\", \"http://10.0.0.2:1789\"]\n";
    let cfg = Config::parse(text, "w.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg.manager_urls(),
        Ok(vec![
            "http://127.0.0.1:1789/rpc/v0".to_string(),
            "http://10.0.0.2:1789/rpc/v0".to_string()
        ])
    );
}

#[test]
fn the_token_comes_from_its_file_or_a_header_and_is_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("worker.toml");
    std::fs::write(dir.path().join("w.token"), "abc123\n").unwrap();
    let text = "[sector_manager]\nrpc_client.addr = \"/ip4/127.0.0.1/tcp/1789\"\nrpc_client.token_file = \"w.token\"\n";
    let cfg = Config::parse(text, "worker.toml").unwrap();
    // Relative to the config file's folder, wherever the process runs.
    assert_eq!(cfg.token(&cfg_path).unwrap().as_deref(), Some("abc123"));
    let headers = cfg.manager_headers(&cfg.token(&cfg_path).unwrap());
    assert_eq!(
        headers,
        [("Authorization".to_string(), "Bearer abc123".to_string())]
    );
    let e = cfg
        .token(&dir.path().join("elsewhere/worker.toml"))
        .unwrap_err();
    assert_eq!(e.key, "sector_manager.rpc_client.token_file");

    let text = "[sector_manager]\nrpc_client.addr = \"/ip4/127.0.0.1/tcp/1789\"\nrpc_client.headers = { Authorization = \"Bearer xyz\", X-Farm = \"a\" }\n";
    let cfg = Config::parse(text, "worker.toml").unwrap();
    assert_eq!(cfg.token(&cfg_path).unwrap().as_deref(), Some("xyz"));
    assert_eq!(cfg.manager_headers(&Some("xyz".into())).len(), 2);
    let shown = format!("{cfg:?}");
    assert!(
        !shown.contains("xyz") && shown.contains("<redacted>"),
        "{shown}"
    );

    let both = format!("{text}rpc_client.token_file = \"w.token\"\n");
    let e = Config::parse(&both, "worker.toml").unwrap_err();
    assert_eq!(e.key, "sector_manager.rpc_client.token_file");
}

#[test]
fn allowed_sizes_may_stand_in_the_thread_as_seed_002_writes_it() {
    let cfg = parse("[[sealing_thread]]\nplan = \"wdpost\"\nallowed_sizes = [\"2KiB\"]").unwrap();
    assert_eq!(
        cfg.sealing_for(&cfg.sealing_thread[0]).allowed_sizes,
        Some(vec![2048])
    );
    let e = parse("[[sealing_thread]]\nplan = \"wdpost\"\nallowed_sizes = [\"3KiB\"]").unwrap_err();
    assert_eq!(e.key, "sealing_thread[0].allowed_sizes[0]");
    let e = parse(
        "[[sealing_thread]]\nplan = \"wdpost\"\nallowed_sizes = [\"2KiB\"]\nsealing.allowed_sizes = [\"32GiB\"]",
    )
    .unwrap_err();
    assert_eq!(e.key, "sealing_thread[0].allowed_sizes");
}

/// What a generated config puts where a value was: numbers at the edges and odd values of every
/// TOML type (`config_file::ODD_VALUES`), or text that is not TOML at all.
fn toml_value() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        proptest::sample::select(config_file::ODD_VALUES).prop_map(String::from),
        "\\PC{0,30}",
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2500))]

    /// Generated worker configs (the examples with values replaced, lines removed, repeated or
    /// added): each loads, or is refused with its key and a reason; nothing panics.
    #[test]
    fn generated_configs_load_or_are_refused_by_key(
        edits in proptest::collection::vec(
            (proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>(), toml_value()),
            1..6,
        )
    ) {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../config-examples"));
        for path in config_file::example_files(dir, "worker").unwrap() {
            let text = config_file::mutated(&std::fs::read_to_string(&path).unwrap(), &edits);
            match Config::parse(&text, "gen.toml") {
                Ok(cfg) => {
                    // What the daemon derives from a loaded config must not fail either.
                    let _ = (cfg.rpc_listen(), cfg.disk_quota(), cfg.attached_stores());
                    for t in &cfg.sealing_thread {
                        let _ = cfg.sealing_for(t);
                    }
                }
                Err(e) => {
                    proptest::prop_assert_eq!(&e.file, "gen.toml");
                    proptest::prop_assert!(!e.key.is_empty() && !e.reason.is_empty(), "{}", e);
                }
            }
        }
    }
}
