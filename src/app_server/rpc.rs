//! The JSON-RPC conversation of one app-server turn: what the adapter says
//! to codex and when (`Conversation`, pure), and the writer of codex's
//! stdin (`RpcWriter`), used only by the thread that owns the turn.
//!
//! ```text
//! >> initialize            << result          >> initialized
//! >> thread/start|resume   << result {thread}  (resume refused as unknown:
//!                                               >> thread/start, same run)
//! >> turn/start            << result {turn}
//!                          << notifications … turn/completed
//! codex asks (approval, question)  >> declined at once
//! timeout, signal, host gone       >> turn/interrupt
//! ```

use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::process::ChildStdin;
use std::time::Duration;

use serde_json::{json, Value};

use crate::app_server::message::{
    request_id, thread_id_of, turn_id_of, Message, Notification, ThreadRefusal,
};
use crate::config::Sandbox;

/// What the turn asks of codex.
#[derive(Debug, Clone)]
pub struct TurnPlan {
    /// The workspace, absolute (JSON carries UTF-8 paths only).
    pub cwd: String,
    pub sandbox: Sandbox,
    pub codex_model: Option<String>,
    pub resume: Option<String>,
    pub message: String,
    /// Absolute paths.
    pub images: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// `initialize` sent, not answered.
    Initializing,
    /// The thread request sent, not answered.
    OpeningThread,
    /// `turn/start` sent, not answered.
    StartingTurn,
    /// The turn runs: notifications until `turn/completed`.
    Running,
    /// The turn ended (or could not start): nothing more to say.
    Done,
}

pub struct Conversation {
    plan: TurnPlan,
    phase: Phase,
    thread_id: Option<String>,
    turn_id: Option<String>,
    interrupted: bool,
}

impl Conversation {
    pub fn new(plan: TurnPlan) -> Conversation {
        Conversation {
            plan,
            phase: Phase::Initializing,
            thread_id: None,
            turn_id: None,
            interrupted: false,
        }
    }

    /// The first message: `initialize`.
    pub fn opening(&self) -> Value {
        json!({
            "id": request_id::INITIALIZE,
            "method": "initialize",
            "params": {
                "clientInfo": {
                    "name": "plexum-openai-provider",
                    "title": null,
                    "version": env!("CARGO_PKG_VERSION"),
                },
                // The stable API only: nothing here needs the experimental one.
                "capabilities": null,
            },
        })
    }

    /// Whether codex answered `initialize` (a codex that exits before that
    /// may have lost a race on its own database: worth one more start).
    pub fn answered_initialize(&self) -> bool {
        self.phase != Phase::Initializing
    }

    /// Whether the turn has ended, as far as the conversation goes.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// What to send in reply to `message`, in order.
    pub fn on_message(&mut self, message: &Message) -> Vec<Value> {
        match message {
            Message::Response { id, outcome } => match (*id, outcome) {
                (request_id::INITIALIZE, Ok(_)) if self.phase == Phase::Initializing => {
                    self.phase = Phase::OpeningThread;
                    let opening = match &self.plan.resume {
                        Some(thread) => self.thread_request(request_id::THREAD, Some(thread), true),
                        None => self.thread_request(request_id::THREAD, None, false),
                    };
                    vec![json!({ "method": "initialized" }), opening]
                }
                (
                    request_id::THREAD | request_id::FRESH_THREAD | request_id::RESUME_AGAIN,
                    Ok(result),
                ) if self.phase == Phase::OpeningThread => match thread_id_of(result) {
                    Some(thread) => {
                        self.thread_id = Some(thread.to_string());
                        self.phase = Phase::StartingTurn;
                        vec![self.turn_start(thread)]
                    }
                    None => self.end(),
                },
                (request_id::THREAD, Err(error)) if self.phase == Phase::OpeningThread => {
                    let resume = self.plan.resume.clone();
                    match (ThreadRefusal::of(error), resume) {
                        (ThreadRefusal::NeedsExperimentalApi, Some(thread)) => {
                            vec![self.thread_request(
                                request_id::RESUME_AGAIN,
                                Some(&thread),
                                false,
                            )]
                        }
                        (ThreadRefusal::UnknownThread, Some(_)) => {
                            vec![self.thread_request(request_id::FRESH_THREAD, None, false)]
                        }
                        _ => self.end(),
                    }
                }
                (request_id::RESUME_AGAIN, Err(error)) if self.phase == Phase::OpeningThread => {
                    match ThreadRefusal::of(error) {
                        ThreadRefusal::UnknownThread => {
                            vec![self.thread_request(request_id::FRESH_THREAD, None, false)]
                        }
                        _ => self.end(),
                    }
                }
                (request_id::TURN_START, Ok(result)) => {
                    if let Some(turn) = turn_id_of(result) {
                        self.turn_id.get_or_insert_with(|| turn.to_string());
                    }
                    if self.phase == Phase::StartingTurn {
                        self.phase = Phase::Running;
                    }
                    Vec::new()
                }
                (
                    request_id::INITIALIZE | request_id::FRESH_THREAD | request_id::TURN_START,
                    Err(_),
                ) => self.end(),
                _ => Vec::new(),
            },
            Message::Request { id, method, .. } => vec![answer(id, method)],
            Message::Notification(Notification::TurnStarted { turn_id }) => {
                self.turn_id.get_or_insert_with(|| turn_id.clone());
                Vec::new()
            }
            Message::Notification(Notification::TurnCompleted { turn_id, .. }) => {
                if self.turn_id.as_ref().is_none_or(|ours| ours == turn_id) {
                    self.phase = Phase::Done;
                }
                Vec::new()
            }
            Message::Notification(_) => Vec::new(),
        }
    }

    /// `turn/interrupt`, once, when a turn is running.
    pub fn interrupt(&mut self) -> Option<Value> {
        if self.interrupted || self.phase == Phase::Done {
            return None;
        }
        let (Some(thread), Some(turn)) = (&self.thread_id, &self.turn_id) else {
            return None;
        };
        self.interrupted = true;
        Some(json!({
            "id": request_id::INTERRUPT,
            "method": "turn/interrupt",
            "params": { "threadId": thread, "turnId": turn },
        }))
    }

    fn end(&mut self) -> Vec<Value> {
        self.phase = Phase::Done;
        Vec::new()
    }

    fn thread_request(&self, id: u64, resume: Option<&str>, exclude_turns: bool) -> Value {
        let sandbox = match self.plan.sandbox {
            Sandbox::Bypass => "danger-full-access",
            Sandbox::WorkspaceWrite => "workspace-write",
            Sandbox::ReadOnly => "read-only",
        };
        let mut params = json!({
            "cwd": self.plan.cwd,
            // Nobody is there to approve: codex must never ask.
            "approvalPolicy": "never",
            "sandbox": sandbox,
        });
        if let Some(model) = &self.plan.codex_model {
            params["model"] = json!(model);
        }
        let method = match resume {
            Some(thread) => {
                params["threadId"] = json!(thread);
                if exclude_turns {
                    // Without it codex sends the whole history back.
                    params["excludeTurns"] = json!(true);
                }
                "thread/resume"
            }
            None => "thread/start",
        };
        json!({ "id": id, "method": method, "params": params })
    }

    fn turn_start(&self, thread: &str) -> Value {
        let mut input =
            vec![json!({ "type": "text", "text": self.plan.message, "text_elements": [] })];
        // One input per image, by absolute path: no comma splitting.
        input.extend(
            self.plan
                .images
                .iter()
                .map(|path| json!({ "type": "localImage", "path": path })),
        );
        json!({
            "id": request_id::TURN_START,
            "method": "turn/start",
            "params": { "threadId": thread, "input": input },
        })
    }
}

/// The answer to a request codex sent: always a refusal, at once.
pub fn answer(id: &Value, method: &str) -> Value {
    let result = match method {
        "item/commandExecution/requestApproval" | "item/fileChange/requestApproval" => {
            json!({ "decision": "decline" })
        }
        // The older names of the same two approvals.
        "execCommandApproval" | "applyPatchApproval" => json!({ "decision": "denied" }),
        "mcpServer/elicitation/request" => json!({ "action": "decline" }),
        _ => {
            return json!({
                "id": id,
                "error": {
                    "code": -32601,
                    "message": format!("plexum-openai-provider does not answer `{method}`: nobody is there to answer"),
                },
            })
        }
    };
    json!({ "id": id, "result": result })
}

/// Codex's stdin, written by the thread that owns the turn. Non-blocking,
/// so a codex that stops reading cannot hold the turn past its deadline.
pub struct RpcWriter {
    stdin: Option<ChildStdin>,
    buf: Vec<u8>,
}

/// How long one wait for codex to read its stdin lasts before `send` looks
/// at the clock and signals again.
const WRITE_TICK: Duration = Duration::from_millis(50);

impl RpcWriter {
    pub fn new(stdin: ChildStdin) -> RpcWriter {
        set_nonblocking(&stdin);
        RpcWriter {
            stdin: Some(stdin),
            buf: Vec::new(),
        }
    }

    /// Writes one message and its `\n`. `give_up` is asked while codex is
    /// not reading; a closed pipe (codex gone) is an error, and its stdout
    /// will tell why.
    pub fn send(&mut self, message: &Value, give_up: &dyn Fn() -> bool) -> io::Result<()> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "codex's stdin is closed",
            ));
        };
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, message).map_err(io::Error::other)?;
        self.buf.push(b'\n');
        let mut written = 0;
        while written < self.buf.len() {
            match stdin.write(&self.buf[written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    if give_up() {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "codex stopped reading its stdin",
                        ));
                    }
                    crate::child::wait_ready(stdin, libc::POLLOUT, WRITE_TICK);
                }
                Err(error) => {
                    self.stdin = None;
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// Closes codex's stdin: app-server then ends (at once, mid-turn too).
    pub fn close(&mut self) {
        self.stdin = None;
    }
}

fn set_nonblocking(stdin: &ChildStdin) {
    let fd = stdin.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(resume: Option<&str>) -> TurnPlan {
        TurnPlan {
            cwd: String::from("/ws"),
            sandbox: Sandbox::Bypass,
            codex_model: None,
            resume: resume.map(String::from),
            message: String::from("--help me"),
            images: vec![String::from("/img/a,b.png")],
        }
    }

    fn parse(text: &str) -> Message {
        Message::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn a_fresh_turn_in_order() {
        let mut conversation = Conversation::new(plan(None));
        assert_eq!(conversation.opening()["method"], "initialize");
        assert!(!conversation.answered_initialize());
        let sent =
            conversation.on_message(&parse(r#"{"id":1,"result":{"userAgent":"x/0.171.0"}}"#));
        assert_eq!(sent[0], json!({"method": "initialized"}));
        assert_eq!(sent[1]["method"], "thread/start");
        assert_eq!(sent[1]["params"]["approvalPolicy"], "never");
        assert_eq!(sent[1]["params"]["sandbox"], "danger-full-access");
        let sent = conversation.on_message(&parse(r#"{"id":2,"result":{"thread":{"id":"T"}}}"#));
        assert_eq!(sent[0]["method"], "turn/start");
        assert_eq!(sent[0]["params"]["input"][0]["text"], "--help me");
        assert_eq!(
            sent[0]["params"]["input"][1],
            json!({"type": "localImage", "path": "/img/a,b.png"})
        );
        assert_eq!(conversation.interrupt(), None, "no turn id yet");
        conversation.on_message(&parse(r#"{"id":3,"result":{"turn":{"id":"U"}}}"#));
        let interrupt = conversation.interrupt().unwrap();
        assert_eq!(interrupt["params"], json!({"threadId": "T", "turnId": "U"}));
        assert_eq!(conversation.interrupt(), None, "once");
        conversation.on_message(&parse(
            r#"{"method":"turn/completed","params":{"turn":{"id":"U","status":"completed"}}}"#,
        ));
        assert!(conversation.is_done());
    }

    #[test]
    fn resume_falls_back_without_exclude_turns_then_to_a_fresh_thread() {
        let mut conversation = Conversation::new(plan(Some("OLD")));
        let sent = conversation.on_message(&parse(r#"{"id":1,"result":{}}"#));
        assert_eq!(sent[1]["method"], "thread/resume");
        assert_eq!(sent[1]["params"]["excludeTurns"], true);
        let sent = conversation.on_message(&parse(
            r#"{"id":2,"error":{"code":-32600,"message":"thread/resume.excludeTurns requires experimentalApi capability"}}"#,
        ));
        assert_eq!(sent[0]["method"], "thread/resume");
        assert_eq!(sent[0]["id"], request_id::RESUME_AGAIN);
        assert!(sent[0]["params"].get("excludeTurns").is_none());
        let sent = conversation.on_message(&parse(
            r#"{"id":6,"error":{"code":-32600,"message":"no rollout found for thread id OLD"}}"#,
        ));
        assert_eq!(sent[0]["method"], "thread/start");
        assert_eq!(sent[0]["id"], request_id::FRESH_THREAD);
    }

    #[test]
    fn the_sandbox_and_model_reach_the_thread_request() {
        let mut plan = plan(Some("OLD"));
        plan.sandbox = Sandbox::ReadOnly;
        plan.codex_model = Some(String::from("gpt-5-mini"));
        let mut conversation = Conversation::new(plan);
        let sent = conversation.on_message(&parse(r#"{"id":1,"result":{}}"#));
        let params = &sent[1]["params"];
        assert_eq!(params["sandbox"], "read-only");
        assert_eq!(params["approvalPolicy"], "never");
        assert_eq!(params["model"], "gpt-5-mini");
        assert_eq!(params["threadId"], "OLD");
        assert_eq!(params["cwd"], "/ws");
    }

    #[test]
    fn every_request_is_answered_at_once() {
        let mut conversation = Conversation::new(plan(None));
        for (method, answer) in [
            (
                "item/commandExecution/requestApproval",
                json!({"decision": "decline"}),
            ),
            (
                "item/fileChange/requestApproval",
                json!({"decision": "decline"}),
            ),
            (
                "mcpServer/elicitation/request",
                json!({"action": "decline"}),
            ),
        ] {
            let request = format!(r#"{{"id":7,"method":"{method}","params":{{}}}}"#);
            let sent = conversation.on_message(&parse(&request));
            assert_eq!(sent, [json!({"id": 7, "result": answer})]);
        }
        let sent = conversation.on_message(&parse(
            r#"{"id":"q","method":"item/tool/requestUserInput","params":{}}"#,
        ));
        assert_eq!(sent[0]["id"], "q");
        assert!(sent[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("requestUserInput"));
    }
}
