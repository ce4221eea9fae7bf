//! A minimal MCP server on stdio (newline-delimited JSON-RPC) with one tool,
//! `say`, which answers `echo: <text>`. The end-to-end tests configure it in
//! codex's CODEX_HOME so the real codex makes a real MCP tool call.

use std::io::{BufRead, Write};

use serde_json::{json, Value};

fn main() {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { return };
        let Ok(request) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        // Notifications carry no id and get no answer.
        let Some(id) = request.get("id").cloned() else {
            continue;
        };
        let result = match request["method"].as_str().unwrap_or_default() {
            "initialize" => json!({
                "protocolVersion": request["params"]["protocolVersion"].as_str().unwrap_or("2025-06-18"),
                "capabilities": { "tools": {} },
                "serverInfo": { "name": "echo", "version": "0.1.0" },
            }),
            "tools/list" => json!({ "tools": [{
                "name": "say",
                "description": "Echoes its text.",
                "inputSchema": { "type": "object", "properties": { "text": { "type": "string" } }, "required": ["text"] },
            }]}),
            "tools/call" => {
                let text = request["params"]["arguments"]["text"]
                    .as_str()
                    .unwrap_or_default();
                json!({ "content": [{ "type": "text", "text": format!("echo: {text}") }], "isError": false })
            }
            _ => {
                let error = json!({ "code": -32601, "message": "method not found" });
                let reply = json!({ "jsonrpc": "2.0", "id": id, "error": error });
                let _ = writeln!(stdout, "{reply}");
                let _ = stdout.flush();
                continue;
            }
        };
        let reply = json!({ "jsonrpc": "2.0", "id": id, "result": result });
        if writeln!(stdout, "{reply}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return;
        }
    }
}
