//! A mock of the OpenAI Responses API on loopback (std only), for the real
//! codex CLI to talk to: it answers `POST /v1/responses` with a scripted
//! Server-Sent-Events reply chosen by a `mock:NAME` word in the user's
//! latest message, and remembers every request and the usage it reported.
//!
//! Scenarios (the word anywhere in the message):
//! - none: one message echoing the user's text;
//! - `mock:multi` two messages; `mock:reason` a reasoning summary first;
//!   `mock:websearch` a web search, then a message (`mock:websearchlive`
//!   announces the search first, in progress and without its query, as the
//!   real API does); `mock:mcp` a call of
//!   the `say` tool of the MCP server `echo` (tests/mcp_echo.rs);
//! - `mock:tool` one `exec_command` call, then an answer; `mock:tool2` two;
//!   `mock:toolfail` a failing command; `mock:exec CMD` runs CMD (to the end
//!   of the line);
//! - `mock:e401`, `mock:e403`, `mock:e429`, `mock:e500` HTTP errors;
//!   `mock:ctx` / `mock:failed` a `response.failed`; `mock:failafter` one
//!   command (its request's usage reported), then a `response.failed`;
//! - `mock:slow` text deltas 200 ms apart; `mock:stream` a reply of 20
//!   words streamed over about 2 s (the mock notes when it wrote each
//!   delta: [`MockServer::delta_times`]); `mock:drop` streams part of a
//!   message and drops the connection, once per server, then answers in
//!   full (codex needs `stream_max_retries` above 0 to retry:
//!   [`MockServer::allow_stream_retries`]); `mock:hang` never answers;
//! - `mock:meet` waits (up to 60 s) until a second `mock:meet` request is in
//!   flight, then answers `met` (or `alone` when none came): proof that two
//!   turns overlapped, without a clock in the test.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Usage the mock reported for one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportedUsage {
    pub input_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Value>>,
    usage: Mutex<Vec<ReportedUsage>>,
    stop: AtomicBool,
    responses: AtomicUsize,
    /// When each delta of a `mock:stream` reply was written and flushed.
    delta_times: Mutex<Vec<Instant>>,
    /// `mock:drop` dropped its stream already.
    dropped: AtomicBool,
    /// How many `mock:meet` requests have arrived.
    meetings: Mutex<usize>,
    met: Condvar,
}

/// The reply of `mock:stream`: 20 words, one delta each.
pub const STREAMED_REPLY: &str = "One two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty.";

/// The pause between two deltas of `mock:stream`.
pub const STREAM_DELTA_PAUSE: Duration = Duration::from_millis(100);

/// What `mock:drop` streams before it drops the connection, and its reply
/// after codex retried.
pub const DROPPED_PART: &str = "partial answer th";
pub const AFTER_DROP_REPLY: &str = "The whole answer, after a dropped stream.";

pub struct MockServer {
    pub port: u16,
    shared: Arc<Shared>,
}

impl MockServer {
    pub fn start() -> MockServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the mock server on loopback");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let accept_shared = Arc::clone(&shared);
        thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&accept_shared);
                thread::spawn(move || {
                    let _ = serve(stream, &shared);
                });
            }
        });
        MockServer { port, shared }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// Writes `config.toml` of a CODEX_HOME that points codex at this mock.
    pub fn write_codex_home(&self, codex_home: &Path) {
        std::fs::create_dir_all(codex_home).unwrap();
        let config = format!(
            "model = \"mock-model\"\n\
             model_provider = \"mock\"\n\
             [model_providers.mock]\n\
             name = \"Mock\"\n\
             base_url = \"{}\"\n\
             wire_api = \"responses\"\n\
             request_max_retries = 0\n\
             stream_max_retries = 0\n\
             supports_websockets = false\n",
            self.base_url()
        );
        std::fs::write(codex_home.join("config.toml"), config).unwrap();
    }

    /// Every request body codex sent, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// When the mock wrote each delta of its `mock:stream` replies.
    pub fn delta_times(&self) -> Vec<Instant> {
        self.shared.delta_times.lock().unwrap().clone()
    }

    /// Lets codex retry a dropped stream (`mock:drop`), as it does by
    /// default against the real API.
    pub fn allow_stream_retries(codex_home: &Path) {
        let path = codex_home.join("config.toml");
        let config = std::fs::read_to_string(&path).unwrap();
        let config = config.replace("stream_max_retries = 0", "stream_max_retries = 2");
        std::fs::write(&path, config).unwrap();
    }

    /// The usage reported for every completed response, in order.
    pub fn reported_usage(&self) -> Vec<ReportedUsage> {
        self.shared.usage.lock().unwrap().clone()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// The text of every user message in a request's `input`, in order.
pub fn user_texts(request: &Value) -> Vec<String> {
    let Some(items) = request.get("input").and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .filter(|item| item.get("role").and_then(Value::as_str) == Some("user"))
        .filter_map(|item| item.get("content").and_then(Value::as_array))
        .map(|parts| {
            parts
                .iter()
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("")
        })
        .collect()
}

fn serve(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut content_length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 {
            return Ok(());
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; content_length];
    reader.read_exact(&mut body)?;
    if !request_line.starts_with("POST") || !request_line.contains("/responses") {
        let reply = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        return stream.write_all(reply.as_bytes());
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.requests.lock().unwrap().push(request.clone());
    respond(&mut stream, &request, shared)
}

/// How many tool outputs follow the latest user message: where a scripted
/// tool conversation stands.
fn tool_outputs_since_user(request: &Value) -> usize {
    let Some(items) = request.get("input").and_then(Value::as_array) else {
        return 0;
    };
    let last_user = items
        .iter()
        .rposition(|item| item.get("role").and_then(Value::as_str) == Some("user"))
        .unwrap_or(0);
    items[last_user..]
        .iter()
        .filter(|item| item.get("type").and_then(Value::as_str) == Some("function_call_output"))
        .count()
}

fn last_tool_output(request: &Value) -> String {
    request
        .get("input")
        .and_then(Value::as_array)
        .and_then(|items| {
            items.iter().rev().find(|item| {
                item.get("type").and_then(Value::as_str) == Some("function_call_output")
            })
        })
        .and_then(|item| item.get("output"))
        .map(|output| match output {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default()
}

fn respond(stream: &mut TcpStream, request: &Value, shared: &Shared) -> std::io::Result<()> {
    let user = user_texts(request).pop().unwrap_or_default();
    let scenario = user
        .split_whitespace()
        .find_map(|word| word.strip_prefix("mock:"))
        .unwrap_or("echo")
        .to_string();
    let response_number = shared.responses.fetch_add(1, Ordering::SeqCst);
    let id = format!("resp_{response_number}");
    let tools_done = tool_outputs_since_user(request);
    let input_items = request
        .get("input")
        .and_then(Value::as_array)
        .map_or(0, Vec::len) as u64;
    let usage = ReportedUsage {
        input_tokens: 1000 + 10 * input_items,
        cached_tokens: 100 + input_items,
        cache_write_tokens: 7,
        output_tokens: 20 + input_items,
        reasoning_tokens: 3,
    };

    let http_error = |status: &str, body: Value| {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            body.to_string().len(),
            body
        )
    };
    let command_call = |command: &str| {
        let arguments = json!({ "cmd": command, "yield_time_ms": 10000 }).to_string();
        json!({"type": "function_call", "id": format!("fc_{response_number}"), "call_id": format!("call_{response_number}"),
               "name": "exec_command", "arguments": arguments})
    };

    let mut items: Vec<Value> = Vec::new();
    let mut pacing = Pacing::AllAtOnce;
    let mut announce_searches = false;
    match scenario.as_str() {
        "e401" => {
            let body = json!({"error": {"message": "Incorrect API key provided: sk-mock.", "type": "invalid_request_error", "code": "invalid_api_key"}});
            return stream.write_all(http_error("401 Unauthorized", body).as_bytes());
        }
        "e403" => {
            return stream.write_all(
                http_error("403 Forbidden", json!({"error": {"message": "forbidden"}})).as_bytes(),
            );
        }
        "e429" => {
            let body = json!({"error": {"message": "Rate limit reached.", "type": "rate_limit_exceeded", "code": "rate_limit_exceeded"}});
            return stream.write_all(http_error("429 Too Many Requests", body).as_bytes());
        }
        "e500" => {
            return stream.write_all(
                http_error(
                    "500 Internal Server Error",
                    json!({"error": {"message": "boom"}}),
                )
                .as_bytes(),
            );
        }
        "hang" => {
            // Accept and never answer, until the test ends.
            while !shared.stop.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(100));
            }
            return Ok(());
        }
        "failafter" if tools_done == 0 => items.push(command_call("echo before-failure")),
        "ctx" | "failed" | "failafter" => {
            let error = if scenario == "ctx" {
                json!({"code": "context_length_exceeded", "message": "Your input exceeds the context window of this model."})
            } else {
                json!({"code": "server_error", "message": "mock response.failed: something broke"})
            };
            let events = vec![
                json!({"type": "response.created", "response": {"id": id}}),
                json!({"type": "response.failed", "response": {"id": id, "error": error}}),
            ];
            return write_sse(stream, &events, Pacing::AllAtOnce, shared);
        }
        "tool" | "tool2" | "toolfail" | "exec" => {
            let wanted = if scenario == "tool2" { 2 } else { 1 };
            if tools_done < wanted {
                let command = match scenario.as_str() {
                    "toolfail" => String::from("echo failing >&2; exit 3"),
                    "exec" => user
                        .split_once("mock:exec ")
                        .map(|(_, rest)| rest.lines().next().unwrap_or_default().to_string())
                        .unwrap_or_default(),
                    _ if tools_done == 0 => String::from("echo hello-from-tool && echo line2"),
                    _ => String::from("echo second"),
                };
                if scenario == "tool2" && tools_done == 0 {
                    items.push(message_item(&id, 0, "Let me run two commands."));
                }
                items.push(command_call(&command));
            } else {
                // Codex wraps the output ("Chunk ID: …\nOutput:\n…"): quote the output.
                let output = last_tool_output(request);
                let printed = output
                    .split_once("Output:\n")
                    .map_or(output.as_str(), |(_, rest)| rest);
                let head: String = printed
                    .trim()
                    .replace('\n', " / ")
                    .chars()
                    .take(80)
                    .collect();
                let text =
                    format!("done after {tools_done} tool call(s); the command printed: {head}");
                items.push(message_item(&id, 1, &text));
            }
        }
        "mcp" => {
            if tools_done == 0 {
                let arguments = json!({ "text": "from the model" }).to_string();
                let mut call = json!({"type": "function_call", "id": format!("fc_{response_number}"),
                                      "call_id": format!("call_{response_number}"), "arguments": arguments});
                // Newer codex offers MCP tools in a namespace; older ones as
                // flat functions named mcp__<server>__<tool>.
                let tools = request
                    .get("tools")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let namespaced = tools
                    .iter()
                    .any(|t| t["type"] == "namespace" && t["name"] == "mcp__echo");
                if namespaced {
                    call["name"] = json!("say");
                    call["namespace"] = json!("mcp__echo");
                } else {
                    call["name"] = json!("mcp__echo__say");
                }
                items.push(call);
            } else {
                let output = last_tool_output(request);
                items.push(message_item(&id, 1, &format!("the tool said: {output}")));
            }
        }
        "websearch" | "websearchlive" => {
            announce_searches = scenario == "websearchlive";
            items.push(json!({"type": "web_search_call", "id": format!("ws_{response_number}"), "status": "completed",
                              "action": {"type": "search", "query": "lexopt argument parser"}}));
            items.push(message_item(&id, 1, "Found it."));
        }
        "multi" => {
            items.push(message_item(&id, 0, "First message (commentary)."));
            items.push(message_item(&id, 1, "Second message (final)."));
        }
        "reason" => {
            items.push(json!({"type": "reasoning", "id": format!("rs_{response_number}"),
                              "summary": [{"type": "summary_text", "text": "**Thinking hard** about the request"}]}));
            items.push(message_item(&id, 1, "Answer after reasoning."));
        }
        "meet" => {
            let mut arrived = shared.meetings.lock().unwrap();
            *arrived += 1;
            shared.met.notify_all();
            let (arrived, _) = shared
                .met
                .wait_timeout_while(arrived, Duration::from_secs(60), |arrived| *arrived < 2)
                .unwrap();
            let text = if *arrived >= 2 { "met" } else { "alone" };
            items.push(message_item(&id, 0, text));
        }
        "slow" => {
            pacing = Pacing::Slow;
            items.push(message_item(&id, 0, "Slow streamed answer in parts."));
        }
        "stream" => {
            pacing = Pacing::Streamed;
            items.push(message_item(&id, 0, STREAMED_REPLY));
        }
        "drop" => {
            if !shared.dropped.swap(true, Ordering::SeqCst) {
                let item_id = format!("msg_{id}_0");
                let events = vec![
                    json!({"type": "response.created", "response": {"id": id}}),
                    json!({"type": "response.output_item.added", "output_index": 0,
                           "item": {"type": "message", "role": "assistant", "id": item_id, "content": []}}),
                    json!({"type": "response.output_text.delta", "output_index": 0, "item_id": item_id, "delta": DROPPED_PART}),
                ];
                // The connection closes without response.completed.
                return write_sse(stream, &events, Pacing::AllAtOnce, shared);
            }
            pacing = Pacing::Slow;
            items.push(message_item(&id, 0, AFTER_DROP_REPLY));
        }
        _ => {
            let shown: String = user.chars().take(80).collect();
            let more = if user.chars().count() > 80 { "…" } else { "" };
            items.push(message_item(&id, 0, &format!("echo: {shown}{more}")));
        }
    }

    let mut events = vec![json!({"type": "response.created", "response": {"id": id}})];
    for (index, item) in items.into_iter().enumerate() {
        if announce_searches && item["type"] == "web_search_call" {
            let started =
                json!({"type": "web_search_call", "id": item["id"], "status": "in_progress"});
            events.push(
                json!({"type": "response.output_item.added", "output_index": index, "item": started}),
            );
        }
        if pacing != Pacing::AllAtOnce {
            if let Some(text) = item.pointer("/content/0/text").and_then(Value::as_str) {
                // Codex streams a message's deltas only once the item was
                // announced; without it, it waits for the whole item.
                let mut added = item.clone();
                added["content"] = json!([]);
                events.push(json!({"type": "response.output_item.added", "output_index": index, "item": added}));
                for word in text.split_inclusive(' ') {
                    events.push(
                        json!({"type": "response.output_text.delta", "output_index": index,
                                       "item_id": item["id"], "delta": word}),
                    );
                }
            }
        }
        events.push(
            json!({"type": "response.output_item.done", "output_index": index, "item": item}),
        );
    }
    events.push(
        json!({"type": "response.completed", "response": {"id": id, "usage": {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": usage.cache_write_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.input_tokens + usage.output_tokens}}}),
    );
    write_sse(stream, &events, pacing, shared)?;
    shared.usage.lock().unwrap().push(usage);
    Ok(())
}

fn message_item(response_id: &str, index: usize, text: &str) -> Value {
    json!({"type": "message", "role": "assistant", "id": format!("msg_{response_id}_{index}"),
           "content": [{"type": "output_text", "text": text}]})
}

/// How a reply's text deltas are spaced in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pacing {
    AllAtOnce,
    /// 200 ms between deltas.
    Slow,
    /// [`STREAM_DELTA_PAUSE`] between deltas, each one's time noted.
    Streamed,
}

fn write_sse(
    stream: &mut TcpStream,
    events: &[Value],
    pacing: Pacing,
    shared: &Shared,
) -> std::io::Result<()> {
    stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
    )?;
    for event in events {
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message");
        stream.write_all(format!("event: {kind}\ndata: {event}\n\n").as_bytes())?;
        stream.flush()?;
        if kind != "response.output_text.delta" {
            continue;
        }
        match pacing {
            Pacing::AllAtOnce => {}
            Pacing::Slow => thread::sleep(Duration::from_millis(200)),
            Pacing::Streamed => {
                shared.delta_times.lock().unwrap().push(Instant::now());
                thread::sleep(STREAM_DELTA_PAUSE);
            }
        }
    }
    Ok(())
}
