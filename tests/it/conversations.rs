//! `turn --conversation KEY` (PROTOCOL.md sections 2 and 7): one codex
//! thread, one set of usage totals and one lock per workspace and host
//! conversation, with the real codex against the mock; and `session
//! show|reset|list` per conversation.

use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::faults::{assert_refused_busy, finish, read_until, send_signal};
use crate::mock_responses::user_texts;
use crate::security::{mkfifo, names_in, notices, outside, run_unblocked};
use crate::support::{adapter, spawn, Run, World};

/// A turn of conversation `key`.
fn keyed(world: &World, key: &str, message: &str) -> Run {
    world.turn_with(&["--conversation", key], message, None)
}

/// `session ACTION --workspace W [--conversation KEY]`: success and its
/// JSON. Under the suite's watchdog: a session command that blocks fails.
fn session(world: &World, action: &str, key: Option<&str>) -> (bool, Value) {
    let mut command = adapter();
    command
        .args(["session", action, "--workspace"])
        .arg(&world.workspace);
    if let Some(key) = key {
        command.args(["--conversation", key]);
    }
    let output = spawn(&mut command, None).wait_with_output().unwrap();
    let report = serde_json::from_slice::<Value>(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "session {action} printed no JSON ({error}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.success(), report)
}

/// The conversations `session list` shows, as (key or null, thread id).
fn listed(world: &World) -> Vec<(Value, Value)> {
    let (ok, report) = session(world, "list", None);
    assert!(ok, "{report}");
    report["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| (entry["conversation"].clone(), entry["thread_id"].clone()))
        .collect()
}

/// Why `session list` finds its first conversation corrupt.
fn first_listed_reason(world: &World) -> String {
    let (ok, report) = session(world, "list", None);
    assert!(ok, "{report}");
    let first = &report["conversations"][0];
    assert_eq!(first["state"], "corrupt", "{report}");
    first["reason"].as_str().unwrap().to_string()
}

/// The session file `session show` names for a conversation.
fn session_file_of(world: &World, key: &str) -> PathBuf {
    let (_, shown) = session(world, "show", Some(key));
    PathBuf::from(shown["session_file"].as_str().unwrap())
}

/// The user texts of every request the mock received, one string each.
fn request_texts(world: &World) -> Vec<String> {
    world
        .mock
        .requests()
        .iter()
        .map(|request| user_texts(request).join("\n"))
        .collect()
}

fn usage_difference(after: &Value, before: &Value) -> Value {
    let mut difference = serde_json::Map::new();
    for (field, total) in after.as_object().unwrap() {
        let earlier = before[field].as_u64().unwrap();
        difference.insert(field.clone(), (total.as_u64().unwrap() - earlier).into());
    }
    Value::Object(difference)
}

#[test]
fn two_conversations_alternate_on_their_own_threads() {
    let world = World::new("conv-alternate");
    let alice_1 = keyed(&world, "alice", "alice-1: the word is heliotrope");
    let bob_1 = keyed(&world, "bob", "bob-1: the word is marigold");
    let alice_2 = keyed(&world, "alice", "alice-2: what was the word?");
    let bob_2 = keyed(&world, "bob", "bob-2: what was the word?");
    for run in [&alice_1, &bob_1, &alice_2, &bob_2] {
        run.assert_completed();
    }
    assert_eq!(alice_1.events[0]["resumed"], false);
    assert_eq!(
        bob_1.events[0]["resumed"], false,
        "bob did not get alice's thread"
    );
    assert_ne!(alice_1.session_id(), bob_1.session_id());
    assert_eq!(alice_2.session_id(), alice_1.session_id());
    assert_eq!(alice_2.events[0]["resumed"], true);
    assert_eq!(bob_2.session_id(), bob_1.session_id());
    assert_eq!(bob_2.events[0]["resumed"], true);

    // The mock saw two separate conversations: no request holds both
    // people's prompts, and each second turn carries its own first one.
    let texts = request_texts(&world);
    assert!(texts.len() >= 4, "{texts:#?}");
    for text in &texts {
        assert_ne!(
            text.contains("alice-"),
            text.contains("bob-"),
            "a request of exactly one conversation: {text}"
        );
    }
    let alice_second = texts.iter().find(|t| t.contains("alice-2")).unwrap();
    assert!(alice_second.contains("heliotrope"), "{alice_second}");
    assert!(!alice_second.contains("marigold"), "{alice_second}");
    let bob_second = texts.iter().find(|t| t.contains("bob-2")).unwrap();
    assert!(bob_second.contains("marigold"), "{bob_second}");
    assert!(!bob_second.contains("heliotrope"), "{bob_second}");

    // One set of totals per conversation: each second turn's usage is its
    // own thread's growth, not the other conversation's.
    for (first, second) in [(&alice_1, &alice_2), (&bob_1, &bob_2)] {
        assert_eq!(
            second.terminal()["usage"],
            usage_difference(
                &second.terminal()["thread_usage"],
                &first.terminal()["thread_usage"]
            ),
            "{}",
            second.stdout
        );
    }
    // Nothing was written under the default name.
    assert!(world.session_file().is_none());
}

#[test]
fn the_default_conversation_is_unaffected_by_keyed_ones() {
    let world = World::new("conv-default");
    let default_file = world.workspace.join(".plexum-codex-session");
    let default_1 = world.turn("ocelot-1: plain turn");
    default_1.assert_completed();
    let before = std::fs::read(&default_file).unwrap();

    let keyed_1 = keyed(&world, "alice", "keyed-1: a host session");
    keyed_1.assert_completed();
    assert_eq!(keyed_1.events[0]["resumed"], false);
    assert_ne!(keyed_1.session_id(), default_1.session_id());
    assert_eq!(
        std::fs::read(&default_file).unwrap(),
        before,
        "a keyed turn left the default session file alone, byte for byte"
    );

    let default_2 = world.turn("ocelot-2: and again");
    assert_eq!(default_2.events[0]["resumed"], true);
    assert_eq!(default_2.session_id(), default_1.session_id());
    // v0.1's file and format: no key inside.
    let stored = world.session_file().unwrap();
    assert_eq!(stored["thread_id"], default_1.session_id());
    assert!(stored.get("conversation").is_none(), "{stored}");

    let texts = request_texts(&world);
    let keyed_request = texts.iter().find(|t| t.contains("keyed-1")).unwrap();
    assert!(!keyed_request.contains("ocelot-1"), "{keyed_request}");
    let default_request = texts.iter().find(|t| t.contains("ocelot-2")).unwrap();
    assert!(default_request.contains("ocelot-1"), "{default_request}");
    assert!(!default_request.contains("keyed-1"), "{default_request}");
}

/// `mock:meet` answers `met` only when a second `mock:meet` request is in
/// flight at the same time: both turns held their own locks at once.
#[test]
fn two_conversations_of_one_workspace_run_at_the_same_time() {
    let world = World::new("conv-parallel");
    let first = spawn(
        &mut world.turn_command(&["--conversation", "alice"], "mock:meet alice"),
        None,
    );
    let second = keyed(&world, "bob", "mock:meet bob");
    let first = Run::from_output(first.wait_with_output().unwrap());
    for run in [&first, &second] {
        run.assert_completed();
        assert_eq!(run.text(), "met", "{}", run.stdout);
    }
    assert_ne!(first.session_id(), second.session_id());
}

#[test]
fn a_second_turn_of_one_conversation_is_busy_and_others_are_not() {
    let world = World::new("conv-busy");
    let mut first = spawn(
        &mut world.turn_command(&["--conversation", "alice"], "mock:hang"),
        None,
    );
    let (events, reader) = read_until(&mut first, "message_start");
    let requests_before = world.mock.requests().len();
    let second = keyed(&world, "alice", "me too");
    assert_refused_busy(&world, &second, requests_before);
    let (shown_ok, shown) = session(&world, "show", Some("alice"));
    assert!(shown_ok);
    assert_eq!(shown["turn_running"], true);
    let (reset_ok, refused) = session(&world, "reset", Some("alice"));
    assert!(!reset_ok);
    assert_eq!(refused["code"], "session_busy");

    // Another conversation and the default one are not held up.
    keyed(&world, "bob", "bob is not blocked").assert_completed();
    world.turn("nor is the default").assert_completed();
    assert_eq!(
        session(&world, "show", Some("bob")).1["turn_running"],
        false
    );

    send_signal(&first, libc::SIGTERM);
    let first = finish(first, reader, events);
    assert_eq!(first.error_code(), "cancelled");
    let (_, shown) = session(&world, "show", Some("alice"));
    assert_eq!(shown["thread_id"], first.session_id(), "{shown}");
    assert_eq!(shown["turn_running"], false);
}

#[test]
fn keys_are_text_never_paths() {
    let world = World::new("conv-keys");
    let at_limit = "k".repeat(256);
    let wide_at_limit = "é".repeat(128);
    let keys = [
        "a/b",
        "..",
        "../../escape",
        "/etc/passwd",
        "\u{202e}evil\u{202d}",
        "🙂👩\u{200d}👩\u{200d}👧",
        "e\u{301}\u{301}\u{308}",
        "line\nbreak\ttab",
        "e\u{301}",
        "\u{e9}",
        at_limit.as_str(),
        wide_at_limit.as_str(),
    ];
    let outside_before = names_in(&world.dir);
    let mut threads = Vec::new();
    for key in keys {
        let run = keyed(&world, key, &format!("hello from {key:?}"));
        run.assert_completed();
        assert_eq!(run.events[0]["resumed"], false, "{key:?}");
        threads.push(run.session_id().to_string());
    }
    // Canonically equivalent keys (é composed and decomposed) are still
    // different keys: the adapter compares bytes.
    let mut distinct = threads.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), keys.len(), "one thread per key");

    // Nothing was created outside the workspace, no folder inside it, and
    // every file is one of the adapter's.
    assert_eq!(names_in(&world.dir), outside_before);
    for name in names_in(&world.workspace) {
        let path = world.workspace.join(&name);
        assert!(
            name.starts_with(".plexum-codex-") && path.is_file(),
            "{name:?}"
        );
    }

    // Each key still finds its own thread, and `session list` names them all.
    for key in ["..", "a/b", at_limit.as_str()] {
        let index = keys.iter().position(|k| *k == key).unwrap();
        let again = keyed(&world, key, "again");
        assert_eq!(again.events[0]["resumed"], true, "{key:?}");
        assert_eq!(again.session_id(), threads[index], "{key:?}");
    }
    let mut expected: Vec<(Value, Value)> = keys
        .iter()
        .zip(&threads)
        .map(|(key, thread)| (Value::from(*key), Value::from(thread.as_str())))
        .collect();
    let mut shown = listed(&world);
    expected.sort_by_key(|(key, _)| key.to_string());
    shown.sort_by_key(|(key, _)| key.to_string());
    assert_eq!(shown, expected);
}

#[test]
fn a_key_over_256_bytes_or_empty_is_a_usage_error() {
    let world = World::new("conv-long");
    for key in ["k".repeat(257), "é".repeat(129), String::new()] {
        let run = keyed(&world, &key, "hello");
        assert_eq!(run.status.code(), Some(2), "{}", run.stdout);
        assert_eq!(run.error_code(), "usage");
        assert_eq!(run.events.len(), 1, "{}", run.stdout);
        assert!(run.stderr.contains("--conversation"), "{}", run.stderr);
    }
    assert!(world.mock.requests().is_empty(), "codex never started");
    assert!(names_in(&world.workspace).is_empty());
    // The session commands refuse such a key too.
    let mut command = adapter();
    command
        .args(["session", "show", "--workspace"])
        .arg(&world.workspace)
        .args(["--conversation", &"k".repeat(257)]);
    let output = spawn(&mut command, None).wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("257 bytes"));
}

#[test]
fn session_list_show_and_reset_per_conversation() {
    let world = World::new("conv-session");
    assert!(listed(&world).is_empty());
    let default = world.turn("the default conversation");
    let alice = keyed(&world, "alice", "alice's conversation");
    let bob = keyed(&world, "bob", "bob's conversation");

    let (ok, report) = session(&world, "list", None);
    assert!(ok);
    let all = report["conversations"].as_array().unwrap();
    assert_eq!(all.len(), 3, "{report}");
    assert_eq!(all[0]["default"], true, "the default comes first: {report}");
    assert_eq!(all[0]["conversation"], Value::Null);
    assert_eq!(all[0]["thread_id"], default.session_id());
    let mut keyed_entries: Vec<(Value, Value)> = listed(&world)[1..].to_vec();
    keyed_entries.sort_by_key(|(key, _)| key.to_string());
    assert_eq!(
        keyed_entries,
        [
            ("alice".into(), alice.session_id().into()),
            ("bob".into(), bob.session_id().into())
        ]
    );
    assert!(all[1..].iter().all(|entry| entry["default"] == false));

    let (ok, shown) = session(&world, "show", Some("alice"));
    assert!(ok);
    assert_eq!(shown["state"], "thread");
    assert_eq!(shown["conversation"], "alice");
    assert_eq!(shown["thread_id"], alice.session_id());
    assert_eq!(shown["thread_usage"], alice.terminal()["thread_usage"]);
    assert_eq!(session(&world, "show", Some("carol")).1["state"], "none");
    assert_eq!(
        session(&world, "show", None).1["thread_id"],
        default.session_id()
    );
    // doctor names the keyed conversations it finds.
    let mut command = adapter();
    command
        .args(["doctor", "--json", "--config"])
        .arg(&world.config)
        .arg("--workspace")
        .arg(&world.workspace);
    let output = spawn(&mut command, None).wait_with_output().unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|check| check["name"] == "conversations")
        .unwrap_or_else(|| panic!("no conversations check: {report}"));
    let detail = check["detail"].as_str().unwrap();
    assert!(detail.starts_with("2 keyed"), "{detail}");
    for (key, run) in [("\"alice\"", &alice), ("\"bob\"", &bob)] {
        assert!(
            detail.contains(&format!("{key}: thread {}", run.session_id())),
            "{detail}"
        );
    }
    let (ok, only_bob) = session(&world, "list", Some("bob"));
    assert!(ok);
    assert_eq!(only_bob["conversations"].as_array().unwrap().len(), 1);
    assert_eq!(only_bob["conversations"][0]["thread_id"], bob.session_id());

    let (ok, reset) = session(&world, "reset", Some("alice"));
    assert!(ok, "{reset}");
    assert_eq!(reset["previous_thread_id"], alice.session_id());
    assert_eq!(reset["conversation"], "alice");
    assert_eq!(session(&world, "show", Some("alice")).1["state"], "none");
    let keys: Vec<Value> = listed(&world).into_iter().map(|(key, _)| key).collect();
    assert_eq!(keys, [Value::Null, "bob".into()]);

    let alice_again = keyed(&world, "alice", "alice starts over");
    assert_eq!(alice_again.events[0]["resumed"], false);
    assert_ne!(alice_again.session_id(), alice.session_id());
    let bob_again = keyed(&world, "bob", "bob carries on");
    assert_eq!(bob_again.session_id(), bob.session_id());
    let default_again = world.turn("the default carries on");
    assert_eq!(default_again.session_id(), default.session_id());

    // Resetting the default leaves the keyed ones.
    let (ok, reset) = session(&world, "reset", None);
    assert!(ok);
    assert_eq!(reset["previous_thread_id"], default.session_id());
    let mut keys: Vec<Value> = listed(&world).into_iter().map(|(key, _)| key).collect();
    keys.sort_by_key(|key| key.to_string());
    assert_eq!(keys, [Value::from("alice"), "bob".into()]);
}

#[test]
fn a_corrupt_conversation_file_is_kept_aside_and_replaced() {
    let world = World::new("conv-corrupt");
    let file = session_file_of(&world, "alice");
    assert_eq!(file.parent().unwrap(), world.workspace);
    std::fs::write(&file, "{not json").unwrap();
    let run = keyed(&world, "alice", "hello after corruption");
    run.assert_completed();
    assert_eq!(run.types()[1], "notice", "{}", run.stdout);
    let kept_aside = names_in(&world.workspace)
        .into_iter()
        .filter(|name| name.contains(".corrupt"))
        .map(|name| std::fs::read_to_string(world.workspace.join(name)).unwrap())
        .collect::<Vec<_>>();
    assert_eq!(kept_aside, ["{not json"]);
    let (_, shown) = session(&world, "show", Some("alice"));
    assert_eq!(shown["thread_id"], run.session_id());
    // A file that names another conversation is not this one's thread.
    let bob = keyed(&world, "bob", "bob's thread");
    std::fs::copy(session_file_of(&world, "bob"), &file).unwrap();
    let run = keyed(&world, "alice", "alice again");
    assert_eq!(run.events[0]["resumed"], false, "{}", run.stdout);
    assert_ne!(run.session_id(), bob.session_id());
    assert_eq!(run.types()[1], "notice", "{}", run.stdout);
}

/// The lock file of a conversation, as `session show` names it.
fn lock_file_of(world: &World, key: &str) -> PathBuf {
    let (_, shown) = session(world, "show", Some(key));
    PathBuf::from(shown["lock_file"].as_str().unwrap())
}

/// A keyed conversation's files are as hostile-proof as the default one's:
/// a link at its session name is not followed (not even to a file that
/// holds this very conversation's thread), a dangling link at its lock
/// creates nothing outside, and `session list` reports both without
/// following them.
#[test]
fn links_at_a_conversations_names_are_kept_aside_never_followed() {
    let world = World::new("conv-links");
    let (outside_dir, _) = outside(&world);
    let first = keyed(&world, "alice", "alice's first turn");
    first.assert_completed();
    let session_file = session_file_of(&world, "alice");
    let lock_file = lock_file_of(&world, "alice");
    // The attacker moves alice's real file out and links to it.
    let moved = outside_dir.join("alice-session");
    std::fs::rename(&session_file, &moved).unwrap();
    let original = std::fs::read(&moved).unwrap();
    symlink(&moved, &session_file).unwrap();
    assert!(first_listed_reason(&world).contains("symbolic link"));
    // (After the listing: `session show|list` take the lock for a moment,
    // which would already keep a link there aside.)
    let created = outside_dir.join("created-by-the-lock");
    std::fs::remove_file(&lock_file).unwrap();
    symlink(&created, &lock_file).unwrap();
    let before = names_in(&outside_dir);

    let (run, _) = run_unblocked(
        &mut world.turn_command(&["--conversation", "alice"], "past the links"),
        Duration::from_secs(60),
    );
    run.assert_completed();
    assert_eq!(run.events[0]["resumed"], false, "the link was not followed");
    let said = notices(&run);
    assert!(said.contains("symbolic link"), "{}", run.stdout);
    assert!(said.contains("lock file"), "{}", run.stdout);
    assert!(!created.exists());
    assert_eq!(names_in(&outside_dir), before);
    assert_eq!(
        std::fs::read(&moved).unwrap(),
        original,
        "never written through"
    );
    // Both links were kept aside as they were, and replaced by files.
    let kept = |path: &PathBuf| PathBuf::from(format!("{}.corrupt", path.display()));
    assert_eq!(std::fs::read_link(kept(&session_file)).unwrap(), moved);
    assert_eq!(std::fs::read_link(kept(&lock_file)).unwrap(), created);
    assert!(std::fs::symlink_metadata(&session_file).unwrap().is_file());
    assert!(std::fs::symlink_metadata(&lock_file).unwrap().is_file());
    let (_, shown) = session(&world, "show", Some("alice"));
    assert_eq!(shown["thread_id"], run.session_id());
}

#[test]
fn fifos_at_a_conversations_names_never_block() {
    for which in ["session", "lock"] {
        let world = World::new("conv-fifo");
        let path = match which {
            "session" => session_file_of(&world, "alice"),
            _ => lock_file_of(&world, "alice"),
        };
        // `session show` made the lock file; the FIFO takes its place.
        let _ = std::fs::remove_file(&path);
        mkfifo(&path);
        if which == "session" {
            // Listing does not open the FIFO either.
            assert!(first_listed_reason(&world).contains("a FIFO"));
        }
        let message = format!("through the fifo at the {which}");
        let mut command =
            world.turn_command(&["--conversation", "alice", "--timeout", "20"], &message);
        let (run, _) = run_unblocked(&mut command, Duration::from_secs(60));
        run.assert_completed();
        assert_eq!(run.text(), format!("echo: {message}"));
        assert!(notices(&run).contains("a FIFO"), "{}", run.stdout);
        assert!(PathBuf::from(format!("{}.corrupt", path.display())).exists());
        let next = keyed(&world, "alice", "and again");
        assert_eq!(next.events[0]["resumed"], true, "{}", next.stdout);
        assert_eq!(next.session_id(), run.session_id());
    }
}
