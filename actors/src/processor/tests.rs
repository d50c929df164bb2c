//! The subprocess protocol against a scripted child (python3): readiness, ids, out-of-order
//! answers, error shapes, a dying child and its restart.

use super::*;
use crate::wire::processor::Stage;
use serde_json::json;

const CHILD: &str = r#"
import sys, json, os
stage = sys.argv[1]
first = sys.argv[2] if len(sys.argv) > 2 else None
print(first or (stage + " processor ready"), flush=True)
held = []
for line in sys.stdin:
    try:
        req = json.loads(line)
    except Exception:
        continue
    op = req["task"].get("op")
    if op == "hold":
        held.append(req)
        continue
    if op == "exit":
        os._exit(3)
    if op == "badutf8":
        sys.stdout.buffer.write(b"\xff\xfe not text\n")
        sys.stdout.flush()
        continue
    if op == "silent":
        continue
    if op == "sleep":
        import time
        time.sleep(req["task"]["secs"])
    if op == "blob":
        sys.stdout.write("x" * req["task"]["n"])
        sys.stdout.flush()
        continue
    if op == "closeout":
        os.close(1)
        continue
    if op == "env":
        print(json.dumps({"id": req["id"], "err_msg": None, "output": {k: os.environ.get(k) for k in req["task"]["names"]}}), flush=True)
        continue
    if op == "err":
        out = {"id": req["id"], "err_msg": "boom", "output": None}
    elif op == "lost":
        out = {"id": req["id"], "err_msg": None, "output": None}
    elif op == "garbage":
        print("this is not json", flush=True)
        out = {"id": req["id"], "err_msg": None, "output": {"ok": True}}
    else:
        out = {"id": req["id"], "err_msg": None, "output": {"echo": req["task"], "pid": os.getpid()}}
    print(json.dumps(out), flush=True)
    for h in held:
        print(json.dumps({"id": h["id"], "err_msg": None, "output": {"echo": h["task"]}}), flush=True)
    held = []
"#;

fn spec(first_line: Option<&str>, stable_wait: Duration) -> ProcessorSpec {
    let mut args = vec!["-c".to_string(), CHILD.to_string(), "pc1".to_string()];
    if let Some(l) = first_line {
        args.push(l.to_string());
    }
    ProcessorSpec {
        stage: Stage::Pc1,
        index: 0,
        bin: "python3".into(),
        args,
        envs: HashMap::new(),
        inherit_envs: true,
        stable_wait,
        auto_restart: true,
        start: StartAt::Startup,
        cpuset: None,
        cgroup_root: "/nonexistent".into(),
        env_overlay: Default::default(),
        timeout: None,
        max_line: 4096,
    }
}

fn call(task: Value) -> Call {
    Call {
        task,
        timeout: Duration::from_secs(60),
    }
}

/// Sends `bad` to a fresh child and checks that its caller gets an error naming `why` (the
/// child was killed), that a restarted child serves the next call, and how long it took.
async fn killed_for(bad: Call, why: &str) -> Duration {
    let (addr, _) = start(spec(None, Duration::from_secs(10)));
    let first = addr
        .send(call(json!({"op": "echo"})))
        .await
        .unwrap()
        .unwrap();
    let started = std::time::Instant::now();
    let err = addr.send(bad).await.unwrap().unwrap_err();
    let took = started.elapsed();
    assert!(err.starts_with("processor pc1#0 was killed: "), "{err}");
    assert!(err.contains(why), "{err}");
    let again = addr
        .send(call(json!({"op": "echo"})))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(
        again["pid"], first["pid"],
        "a new child serves the next call"
    );
    took
}

#[actix_rt::test]
async fn a_child_that_prints_bytes_that_are_not_text_is_killed() {
    killed_for(call(json!({"op": "badutf8"})), "not UTF-8").await;
}

#[actix_rt::test]
async fn a_child_that_prints_an_endless_line_is_killed() {
    killed_for(
        call(json!({"op": "blob", "n": 100_000})),
        "a line longer than 4096 bytes",
    )
    .await;
}

#[actix_rt::test]
async fn a_child_that_closes_its_output_is_killed() {
    killed_for(call(json!({"op": "closeout"})), "closed its output").await;
}

#[actix_rt::test]
async fn a_task_without_an_answer_is_killed_at_its_timeout() {
    let silent = Call {
        task: json!({"op": "silent"}),
        timeout: Duration::from_millis(500),
    };
    let took = killed_for(
        silent,
        "task 2 did not answer within 500ms (processors.pc1[0].timeout)",
    )
    .await;
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[actix_rt::test]
async fn a_dropped_call_keeps_its_capacity_until_the_child_answers() {
    use crate::limits::StageLimits;
    use crate::processors::{ProcessorHandle, Processors};
    let (addr, pid) = start(spec(None, Duration::from_secs(10)));
    let handle = ProcessorHandle::new(addr, pid, Some(1), vec![], None);
    let procs = Processors::new(HashMap::from([(Stage::Pc1, vec![handle])]));
    let limits = StageLimits::default();
    let running = || limits.concurrent().get("pc1").map_or(0, |u| u.running);
    let slot = limits.acquire(Stage::Pc1).await;
    let task = json!({"op": "sleep", "secs": 1.5});
    let call = procs.call(Stage::Pc1, 2048, task, &limits, slot, |_| {});
    assert!(tokio::time::timeout(Duration::from_millis(500), call)
        .await
        .is_err());
    assert_eq!(running(), 1, "the child still works on the dropped task");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(running(), 0, "freed once the child answered");
}

#[tokio::test]
async fn lines_are_read_whole_or_cut_at_the_limit() {
    let mut input: &[u8] = b"one\r\ntwo\n0123456789abc\nlast";
    let mut buf = Vec::new();
    let mut next = |max| {
        buf.clear();
        let r = futures_util::FutureExt::now_or_never(read_line(&mut input, max, &mut buf));
        (
            r.unwrap().unwrap(),
            String::from_utf8_lossy(&buf).into_owned(),
        )
    };
    assert_eq!(next(10), (Line::Whole, "one".into()));
    assert_eq!(next(3), (Line::Whole, "two".into()));
    assert_eq!(next(10), (Line::TooLong, "0123456789".into()));
    assert_eq!(next(10), (Line::Whole, "abc".into()));
    assert_eq!(next(10), (Line::Whole, "last".into()));
    assert_eq!(next(10), (Line::Eof, String::new()));
}

#[test]
fn default_timeouts_follow_the_stage_and_the_size() {
    let h = |n: u64| Duration::from_secs(n * 3600);
    assert_eq!(default_timeout(Stage::Pc1, 32 << 30), h(24));
    assert_eq!(default_timeout(Stage::Pc1, 64 << 30), h(48));
    assert_eq!(default_timeout(Stage::C2, 32 << 30), h(12));
    assert_eq!(default_timeout(Stage::Pc1, 2048), Duration::from_secs(1800));
    assert_eq!(default_timeout(Stage::Pc1, 8 << 30), h(6));
    assert_eq!(
        default_timeout(Stage::WindowPost, 64 << 30),
        Duration::from_secs(1800)
    );
}

fn start(spec: ProcessorSpec) -> (Addr<Processor>, Arc<AtomicU32>) {
    let pid = Arc::new(AtomicU32::new(0));
    let p = pid.clone();
    (Supervisor::start(move |_| Processor::new(spec, p)), pid)
}

#[actix_rt::test]
async fn answers_are_matched_by_id_even_out_of_order() {
    let (addr, _) = start(spec(None, Duration::from_secs(10)));
    // Sent before the child is ready: queued, then delivered in order.
    let held = addr.send(call(json!({"op": "hold", "n": 1})));
    let quick = addr.send(call(json!({"op": "echo", "n": 2})));
    let (held, quick) = tokio::join!(held, quick);
    assert_eq!(held.unwrap().unwrap()["echo"]["n"], 1);
    assert_eq!(quick.unwrap().unwrap()["echo"]["n"], 2);
}

#[actix_rt::test]
async fn child_errors_are_reported_and_bad_lines_skipped() {
    let (addr, _) = start(spec(None, Duration::from_secs(10)));
    assert_eq!(
        addr.send(call(json!({"op": "err"}))).await.unwrap(),
        Err("boom".into())
    );
    assert_eq!(
        addr.send(call(json!({"op": "lost"}))).await.unwrap(),
        Err("output field lost".into())
    );
    let ok = addr
        .send(call(json!({"op": "garbage"})))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ok["ok"], true);
}

#[actix_rt::test]
async fn a_dying_child_fails_its_requests_and_is_restarted() {
    let (addr, pid) = start(spec(None, Duration::from_secs(10)));
    let first = addr
        .send(call(json!({"op": "echo"})))
        .await
        .unwrap()
        .unwrap();
    let first_pid = first["pid"].as_u64().unwrap();
    assert_eq!(u64::from(pid.load(Ordering::Relaxed)), first_pid);
    let held = addr.send(call(json!({"op": "hold"})));
    let killer = addr.send(call(json!({"op": "exit"})));
    let (held, killer) = tokio::join!(held, killer);
    for r in [held.unwrap(), killer.unwrap()] {
        let err = r.unwrap_err();
        assert!(err.starts_with("child process exited: pc1"), "{err}");
    }
    // A call made while the child restarts waits for the new child.
    let started = std::time::Instant::now();
    let again = addr
        .send(call(json!({"op": "echo"})))
        .await
        .unwrap()
        .unwrap();
    assert!(started.elapsed() >= RESTART_DELAY - Duration::from_millis(500));
    assert_ne!(
        again["pid"].as_u64().unwrap(),
        first_pid,
        "a new child serves after the restart"
    );
}

#[actix_rt::test]
async fn a_child_started_at_the_first_task_is_not_there_before_it() {
    let mut s = spec(None, Duration::from_secs(10));
    s.start = StartAt::FirstTask;
    let (addr, pid) = start(s);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pid.load(Ordering::Relaxed), 0, "a child before any task");
    let first = addr.send(EnsureStarted).await.unwrap();
    assert_ne!(first, 0);
    let out = addr
        .send(call(json!({"op": "echo"})))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out["pid"].as_u64(), Some(u64::from(first)));
    assert_eq!(addr.send(EnsureStarted).await.unwrap(), first, "one child");
}

#[actix_rt::test]
async fn without_auto_restart_calls_fail_fast_once_the_child_is_gone() {
    let mut s = spec(None, Duration::from_secs(10));
    s.auto_restart = false;
    let (addr, _) = start(s);
    let err = addr
        .send(call(json!({"op": "exit"})))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.starts_with("child process exited"), "{err}");
    let err = addr
        .send(call(json!({"op": "echo"})))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.contains("is not running"), "{err}");
    // Nor does a caller start it again.
    assert_eq!(addr.send(EnsureStarted).await.unwrap(), 0);
}

#[actix_rt::test]
async fn a_child_with_a_wrong_first_line_is_killed() {
    let (addr, _) = start(spec(Some("hello"), Duration::from_secs(10)));
    let r = addr.send(call(json!({"op": "echo"}))).await.unwrap();
    let err = r.unwrap_err();
    assert!(err.contains("was killed: its first line was not"), "{err}");
}

#[actix_rt::test]
async fn a_child_that_never_gets_ready_is_killed_after_stable_wait() {
    let mut s = spec(None, Duration::from_millis(300));
    s.args = vec!["-c".into(), "import time; time.sleep(30)".into()];
    let (addr, _) = start(s);
    let started = std::time::Instant::now();
    let err = addr.send(call(json!({}))).await.unwrap().unwrap_err();
    assert!(
        err.contains("was killed: it was not ready within stable_wait"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn cpusets_parse() {
    assert_eq!(parse_cpuset("0-3,8"), Ok(vec![0, 1, 2, 3, 8]));
    assert_eq!(parse_cpuset("5"), Ok(vec![5]));
    assert!(parse_cpuset("3-1").is_err());
    assert!(parse_cpuset("x").is_err());
    assert!(parse_cpuset("").is_err());
}

#[test]
fn without_a_cgroup_v2_cpuset_the_child_is_pinned_by_affinity() {
    // A directory that merely accepts files is not a cgroup tree (a cgroup v1 host looks like this).
    let fake_root = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pinning = pin_to_cpuset(fake_root.path(), "pc1#0", child.id(), "0");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    let set = nix::sched::sched_getaffinity(pid).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(pinning, Pinning::Affinity);
    assert!(set.is_set(0).unwrap());
    assert!(!set.is_set(1).unwrap_or(false), "only CPU 0 is left");
    assert!(
        !fake_root
            .path()
            .join("damocles-worker")
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(false),
        "nothing is left in the fake tree"
    );
}

#[actix_rt::test]
async fn children_inherit_the_environment_changes_made_through_the_api() {
    let sp = spec(None, Duration::from_secs(10));
    std::env::set_var("DAMOCLES_TEST_GONE", "here");
    sp.env_overlay.write().unwrap().extend([
        ("DAMOCLES_TEST_SET".to_string(), Some("1".to_string())),
        ("DAMOCLES_TEST_GONE".to_string(), None),
    ]);
    let overlay = sp.env_overlay.clone();
    let (addr, _) = start(sp);
    let names = json!({"op": "env", "names": ["DAMOCLES_TEST_SET", "DAMOCLES_TEST_GONE"]});
    let env = addr.send(call(names.clone())).await.unwrap().unwrap();
    assert_eq!(
        env,
        json!({"DAMOCLES_TEST_SET": "1", "DAMOCLES_TEST_GONE": null})
    );
    // A change applies to the next child: the running one keeps its environment.
    overlay
        .write()
        .unwrap()
        .insert("DAMOCLES_TEST_SET".to_string(), Some("2".to_string()));
    assert_eq!(
        addr.send(call(names.clone())).await.unwrap().unwrap()["DAMOCLES_TEST_SET"],
        "1"
    );
    let _ = addr.send(call(json!({"op": "exit"}))).await;
    tokio::time::sleep(RESTART_DELAY + Duration::from_secs(2)).await;
    let env = addr.send(call(names)).await.unwrap().unwrap();
    assert_eq!(env["DAMOCLES_TEST_SET"], "2", "{env}");
}
