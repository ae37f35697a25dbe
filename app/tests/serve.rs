//! `monovlm serve` as a subprocess on a free loopback port, spoken to over plain HTTP/1.1: answers
//! must equal the runtime's greedy output, bad requests get OpenAI-shaped 4xx errors and the
//! server keeps serving.

use base64::Engine;
use runtime::image::{pilimage, DecodeLimits};
use runtime::{Chat, GenerationOptions, LoadOptions, Model, PromptFormat, SamplingOptions};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

fn fixtures() -> PathBuf {
    std::env::var("MONOVLM_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"))
}

fn model_dir() -> PathBuf {
    fixtures().join("fuyu-tiny/model")
}

fn image_path(name: &str) -> PathBuf {
    fixtures().join("fuyu-tiny/images").join(name)
}

fn data_uri(name: &str) -> String {
    let bytes = std::fs::read(image_path(name)).unwrap();
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The server process; killed on drop. Its stderr lines are collected for log assertions.
struct Server {
    child: Child,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        Self::start_with_env(extra, &[])
    }

    fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_monovlm"))
            .envs(env.iter().copied())
            .args([
                "serve",
                "--model",
                model_dir().to_str().unwrap(),
                "--port",
                "0",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start monovlm serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let log2 = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = line.find("listening on http://") {
                    let _ = tx.send(line[i + "listening on http://".len()..].to_string());
                }
                log2.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start: {:?}", log.lock().unwrap());
            }
        };
        Server { child, addr, log }
    }

    fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if self.log.lock().unwrap().iter().any(|l| l.contains(needle)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn post(&self, body: &[u8]) -> Resp {
        request(&self.addr, "POST", "/v1/chat/completions", &[], body)
    }

    fn chat(&self, body: &Value) -> Resp {
        self.post(body.to_string().as_bytes())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&self.body));
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts an OpenAI-shaped error with this status; returns the error object.
    fn error(&self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        let v = self.json();
        let e = v["error"].clone();
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert!(e["type"].is_string(), "{v}");
        assert!(e.get("param").is_some() && e.get("code").is_some(), "{v}");
        e
    }

    /// `data:` payloads of an SSE body, checking that it ends with `[DONE]`.
    fn sse(&self) -> Vec<Value> {
        let text = String::from_utf8(self.body.clone()).unwrap();
        let data: Vec<&str> = text
            .split("\n\n")
            .filter(|e| !e.trim().is_empty())
            .map(|e| e.strip_prefix("data: ").expect(e))
            .collect();
        assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
        data[..data.len() - 1]
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    }
}

fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) before reading everything; a failed write is fine then.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Resp {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let size_str = String::from_utf8_lossy(&b[..nl]);
        let size = usize::from_str_radix(size_str.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + size]);
        b = &b[nl + 2 + size + 2..];
    }
    out
}

fn image_question(prompt: &str, image: &str, max_tokens: usize) -> Value {
    json!({
        "model": "model",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": prompt},
            {"type": "image_url", "image_url": {"url": data_uri(image)}},
        ]}],
        "max_tokens": max_tokens,
        "temperature": 0,
    })
}

/// What the runtime answers greedily (the server's defaults: EOS stop and suppression on).
struct Expected {
    text: String,
    finish: &'static str,
    prompt_tokens: usize,
    completion_tokens: usize,
}

fn greedy_options(max_tokens: usize) -> GenerationOptions {
    GenerationOptions {
        max_tokens,
        sampling: SamplingOptions {
            temperature: 0.0,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn local_answer(model: &Model, prompt: &str, image: Option<&str>, max_tokens: usize) -> Expected {
    let images: Vec<_> = image
        .map(|n| {
            let bytes = std::fs::read(image_path(n)).unwrap();
            pilimage::decode_rgb(&bytes, &DecodeLimits::default()).unwrap()
        })
        .into_iter()
        .collect();
    let mut chat = Chat::new(model, PromptFormat::Chat);
    let r = chat
        .send(prompt, &images, &greedy_options(max_tokens), &mut |_| true)
        .unwrap();
    Expected {
        text: r.text,
        finish: match r.finish {
            runtime::FinishReason::Stop => "stop",
            _ => "length",
        },
        prompt_tokens: r.prompt_tokens,
        completion_tokens: r.ids.len(),
    }
}

fn load_model() -> Model {
    Model::load(&model_dir(), &LoadOptions::default()).unwrap()
}

fn content(v: &Value) -> String {
    v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no content in {v}"))
        .to_string()
}

fn streamed_text(events: &[Value]) -> String {
    events
        .iter()
        .filter_map(|e| e["choices"].get(0))
        .filter_map(|c| c["delta"]["content"].as_str())
        .collect()
}

const CAPTION: &str = "Generate a coco-style caption.\n";

#[test]
fn image_question_equals_local_greedy_answer_and_ask() {
    let server = Server::start(&[]);
    let model = load_model();
    for image in ["wide.png", "small.png", "tall.png"] {
        let want = local_answer(&model, CAPTION, Some(image), 8);
        let r = server.chat(&image_question(CAPTION, image, 8));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("content-type"), Some("application/json"));
        let v = r.json();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "model");
        assert_eq!(v["choices"][0]["message"]["role"], "assistant");
        assert_eq!(content(&v), want.text, "{image}");
        assert_eq!(v["choices"][0]["finish_reason"], want.finish);
        // Usage counts every prefilled position, image tokens included.
        assert_eq!(v["usage"]["prompt_tokens"], want.prompt_tokens);
        assert_eq!(v["usage"]["completion_tokens"], want.completion_tokens);
        assert_eq!(
            v["usage"]["total_tokens"],
            want.prompt_tokens + want.completion_tokens
        );
    }
    // `monovlm ask` prints the same answer.
    let out = Command::new(env!("CARGO_BIN_EXE_monovlm"))
        .args(["ask", "--model", model_dir().to_str().unwrap(), "--image"])
        .arg(image_path("wide.png"))
        .args(["--max-tokens", "8", CAPTION])
        .output()
        .unwrap();
    assert!(out.status.success());
    let asked = String::from_utf8(out.stdout).unwrap();
    let r = server.chat(&image_question(CAPTION, "wide.png", 8));
    assert_eq!(content(&r.json()), asked.trim_end_matches('\n'));
    // 45 = 3 rows of (10 patches + newline) + <s> + 11 prompt tokens + <0x04>.
    assert_eq!(r.json()["usage"]["prompt_tokens"], 45);
}

#[test]
fn streamed_answer_equals_the_non_streamed_one() {
    let server = Server::start(&[]);
    let model = load_model();
    let want = local_answer(&model, CAPTION, Some("wide.png"), 8);
    let mut req = image_question(CAPTION, "wide.png", 8);
    req["stream"] = json!(true);
    req["stream_options"] = json!({"include_usage": true});
    let r = server.chat(&req);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let events = r.sse();
    assert!(events.len() >= 4, "{events:?}");
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    for e in &events {
        assert_eq!(e["object"], "chat.completion.chunk");
        assert_eq!(e["id"], events[0]["id"]);
    }
    assert_eq!(streamed_text(&events), want.text);
    // More than one content piece: the answer really is streamed.
    let pieces = events
        .iter()
        .filter(|e| {
            e["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
        })
        .count();
    assert!(pieces > 1, "{events:?}");
    let finish: Vec<&Value> = events
        .iter()
        .filter_map(|e| e["choices"].get(0))
        .map(|c| &c["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, [&json!(want.finish)]);
    let usage = &events.last().unwrap()["usage"];
    assert_eq!(usage["prompt_tokens"], want.prompt_tokens);
    assert_eq!(usage["completion_tokens"], want.completion_tokens);
}

#[test]
fn sixteen_concurrent_clients_match_a_serial_run() {
    let server = Server::start(&["--parallel", "2", "--max-queue", "32"]);
    let prompts = [
        CAPTION,
        "What color is the bus?\n",
        "Describe the image in detail.\n",
        "What is in this image?\n",
    ];
    let images = ["wide.png", "tall.png", "small.png", "col1.png"];
    let reqs: Vec<Value> = (0..16)
        .map(|i| {
            let mut r = image_question(prompts[i % 4], images[(i / 4) % 4], 6 + i % 3);
            r["stream"] = json!(i % 2 == 1);
            r
        })
        .collect();
    let text_of = |r: &Resp, stream: bool| -> String {
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        if stream {
            streamed_text(&r.sse())
        } else {
            content(&r.json())
        }
    };
    let serial: Vec<String> = reqs
        .iter()
        .map(|r| text_of(&server.chat(r), r["stream"] == json!(true)))
        .collect();
    let addr = server.addr.clone();
    let handles: Vec<_> = reqs
        .into_iter()
        .map(|r| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let resp = request(
                    &addr,
                    "POST",
                    "/v1/chat/completions",
                    &[],
                    r.to_string().as_bytes(),
                );
                (resp, r["stream"] == json!(true))
            })
        })
        .collect();
    let concurrent: Vec<String> = handles
        .into_iter()
        .map(|h| {
            let (resp, stream) = h.join().unwrap();
            text_of(&resp, stream)
        })
        .collect();
    assert_eq!(concurrent, serial);
    // A batch of different answers, not one answer repeated.
    let distinct: std::collections::BTreeSet<&String> = serial.iter().collect();
    assert!(distinct.len() > 4, "{serial:?}");
}

/// A PNG whose header claims `w × h` pixels but holds no pixel data.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    v.extend(13u32.to_be_bytes());
    v.extend(&ihdr);
    v.extend(crc32(&ihdr).to_be_bytes());
    v.extend(0u32.to_be_bytes());
    v.extend(b"IDAT");
    v.extend(crc32(b"IDAT").to_be_bytes());
    v
}

fn with_image_url(url: &str) -> Value {
    json!({
        "model": "model",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": url}},
        ]}],
        "max_tokens": 4,
    })
}

#[test]
fn bad_requests_get_4xx_and_the_server_keeps_serving() {
    let server = Server::start(&["--max-body-bytes", "1000000"]);
    let good = image_question(CAPTION, "small.png", 4);
    let good_text = content(&server.chat(&good).json());
    let still_serving = |what: &str| {
        let r = server.chat(&good);
        assert_eq!(
            r.status,
            200,
            "after {what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(content(&r.json()), good_text, "after {what}");
        let h = request(&server.addr, "GET", "/health", &[], b"");
        assert_eq!((h.status, h.json()["status"].as_str()), (200, Some("ok")));
    };

    let e = server
        .post(br#"{"model": "model", "messages": [{"role": "user""#)
        .error(400);
    assert!(
        e["message"].as_str().unwrap().contains("malformed JSON"),
        "{e}"
    );
    still_serving("malformed JSON");

    let e = server.post(br#"{"messages": "not a list"}"#).error(400);
    assert!(
        e["message"].as_str().unwrap().contains("invalid request"),
        "{e}"
    );
    still_serving("wrong JSON shape");

    let e = server
        .chat(&with_image_url("data:image/png;base64,%%%not base64%%%"))
        .error(400);
    assert_eq!(e["code"], "invalid_base64", "{e}");
    still_serving("bad base64");

    let b64 = base64::engine::general_purpose::STANDARD;
    let e = server
        .chat(&with_image_url(&format!(
            "data:image/png;base64,{}",
            b64.encode(b"hello, this is not an image")
        )))
        .error(400);
    assert_eq!(e["code"], "invalid_image", "{e}");
    still_serving("undecodable image");

    let huge = format!(
        "data:image/png;base64,{}",
        b64.encode(png_claiming(100_000, 100_000))
    );
    let e = server.chat(&with_image_url(&huge)).error(400);
    assert_eq!(e["code"], "image_too_large", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("100000x100000"),
        "{e}"
    );
    still_serving("huge image");

    let e = server
        .chat(&with_image_url("https://example.com/cat.png"))
        .error(400);
    assert_eq!(e["code"], "remote_image_unsupported", "{e}");
    still_serving("remote URL");

    let mut unknown = good.clone();
    unknown["model"] = json!("gpt-4o");
    let e = server.chat(&unknown).error(404);
    assert_eq!(e["code"], "model_not_found", "{e}");
    still_serving("unknown model");

    // Over the context length (16384) but under the body limit; streamed requests get the same 400.
    let long =
        json!({"messages": [{"role": "user", "content": "word ".repeat(17_000)}], "max_tokens": 2});
    let e = server.chat(&long).error(400);
    assert_eq!(e["code"], "context_length_exceeded", "{e}");
    let mut long_stream = long.clone();
    long_stream["stream"] = json!(true);
    let e = server.chat(&long_stream).error(400);
    assert_eq!(e["code"], "context_length_exceeded", "{e}");
    still_serving("over-long prompt");

    let big = vec![b' '; 1_500_000];
    let e = server.post(&big).error(413);
    assert_eq!(e["code"], "request_too_large", "{e}");
    still_serving("body over the limit");
    // The same without a declared length: the limit holds while reading a chunked body.
    let mut s = TcpStream::connect(&server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
                Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    let _ = s.write_all(head.as_bytes());
    let chunk = [b' '; 100_000];
    for _ in 0..15 {
        let _ = write!(s, "{:x}\r\n", chunk.len());
        let _ = s.write_all(&chunk);
        let _ = s.write_all(b"\r\n");
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let e = parse_response(&raw).error(413);
    assert_eq!(e["code"], "request_too_large", "{e}");
    still_serving("chunked body over the limit");

    for bad in [
        json!({"messages": []}),
        json!({"messages": [{"role": "assistant", "content": "hi"}]}),
        json!({"messages": [{"role": "user", "content": "hi"}], "n": 3}),
        json!({"messages": [{"role": "user", "content": "hi"}], "temperature": 9}),
    ] {
        server.chat(&bad).error(400);
    }
    let r = request(&server.addr, "GET", "/v1/nothing-here", &[], b"");
    r.error(404);
    still_serving("invalid parameters");
}

#[test]
fn api_key_is_required_when_set() {
    let server = Server::start(&["--api-key", "sekrit"]);
    let body = image_question(CAPTION, "small.png", 2).to_string();
    let path = "/v1/chat/completions";
    let e = request(&server.addr, "POST", path, &[], body.as_bytes()).error(401);
    assert_eq!(e["code"], "invalid_api_key");
    request(
        &server.addr,
        "POST",
        path,
        &[("Authorization", "Bearer wrong")],
        body.as_bytes(),
    )
    .error(401);
    request(&server.addr, "GET", "/v1/models", &[], b"").error(401);
    let ok = request(
        &server.addr,
        "POST",
        path,
        &[("Authorization", "Bearer sekrit")],
        body.as_bytes(),
    );
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    let models = request(
        &server.addr,
        "GET",
        "/v1/models",
        &[("Authorization", "Bearer sekrit")],
        b"",
    );
    assert_eq!(models.json()["data"][0]["id"], "model");
    let one = request(
        &server.addr,
        "GET",
        "/v1/models/model",
        &[("Authorization", "Bearer sekrit")],
        b"",
    );
    assert_eq!(one.json()["id"], "model");
    request(
        &server.addr,
        "GET",
        "/v1/models/other",
        &[("Authorization", "Bearer sekrit")],
        b"",
    )
    .error(404);
    // Health stays open for load balancers and scripts.
    assert_eq!(
        request(&server.addr, "GET", "/health", &[], b"").status,
        200
    );
}

#[test]
fn conversation_history_and_stop_strings() {
    let server = Server::start(&[]);
    let model = load_model();
    // History: the earlier exchange is replayed, then the new turn answered.
    let bytes = std::fs::read(image_path("wide.png")).unwrap();
    let img = pilimage::decode_rgb(&bytes, &DecodeLimits::default()).unwrap();
    let mut chat = Chat::new(&model, PromptFormat::Chat);
    let replayed = chat
        .replay(
            "Be brief.\n\nWhat is this?",
            std::slice::from_ref(&img),
            "A bus.",
        )
        .unwrap();
    let want = chat
        .send("Tell me more.", &[], &greedy_options(6), &mut |_| true)
        .unwrap();
    let req = json!({
        "model": "model",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": data_uri("wide.png")}},
            ]},
            {"role": "assistant", "content": "A bus."},
            {"role": "user", "content": "Tell me more."},
        ],
        "max_tokens": 6,
        "temperature": 0,
    });
    let v = server.chat(&req).json();
    assert_eq!(content(&v), want.text);
    assert_eq!(v["usage"]["prompt_tokens"], replayed + want.prompt_tokens);

    // Stop strings: cut at the first occurrence, not included, finish_reason "stop".
    let full = local_answer(&model, CAPTION, Some("wide.png"), 8).text;
    let words: Vec<&str> = full.split(' ').collect();
    assert!(words.len() > 2, "{full:?}");
    let stop = format!(" {}", words[2]);
    let at = full.find(&stop).unwrap();
    for stream in [false, true] {
        let mut req = image_question(CAPTION, "wide.png", 8);
        req["stop"] = json!([stop, "never appears"]);
        req["stream"] = json!(stream);
        let r = server.chat(&req);
        let (text, finish) = if stream {
            let ev = r.sse();
            let f = ev
                .iter()
                .filter_map(|e| e["choices"][0]["finish_reason"].as_str())
                .map(str::to_string)
                .collect::<String>();
            (streamed_text(&ev), f)
        } else {
            let v = r.json();
            (
                content(&v),
                v["choices"][0]["finish_reason"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        };
        assert_eq!(text, full[..at], "stream={stream}");
        assert_eq!(finish, "stop", "stream={stream}");
    }
}

/// Opens a streaming request and returns the socket after the first event arrived.
fn open_stream(addr: &str, body: &Value) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.to_string();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("data: ") {
        let n = s.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "stream closed early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"));
    s
}

#[test]
fn disconnect_cancels_and_a_full_queue_gets_503() {
    // One worker and no waiting room: a second request while one generates is refused at once.
    let server = Server::start(&[
        "--parallel",
        "1",
        "--max-queue",
        "0",
        "--max-tokens",
        "15000",
    ]);
    let long = json!({
        "messages": [{"role": "user", "content": "Count to a million."}],
        "max_tokens": 15000,
        "temperature": 0,
        "stream": true,
    });
    let stream = open_stream(&server.addr, &long);
    let r = server.chat(&image_question(CAPTION, "small.png", 2));
    let e = r.error(503);
    assert_eq!(e["code"], "queue_full");
    assert_eq!(r.header("retry-after"), Some("1"));

    // Hanging up stops the generation long before its 15000 tokens.
    drop(stream);
    assert!(
        server.wait_for_log("cancelled (client disconnected)", Duration::from_secs(60)),
        "{:?}",
        server.log.lock().unwrap()
    );
    // The worker may need a moment to come back to the (zero-length) queue after logging.
    let mut r = server.chat(&image_question(CAPTION, "small.png", 2));
    for _ in 0..50 {
        if r.status != 503 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        r = server.chat(&image_question(CAPTION, "small.png", 2));
    }
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

/// The real `openai` Python client, when it is installed (CI installs it).
#[test]
fn openai_python_client() {
    let python = std::env::var("MONOVLM_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_openai = Command::new(&python)
        .args(["-c", "import openai"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    // CI names its interpreter explicitly: there a missing client is a failure, not a skip.
    assert!(
        has_openai || std::env::var("MONOVLM_PYTHON").is_err(),
        "MONOVLM_PYTHON={python} cannot import openai"
    );
    if !has_openai {
        eprintln!("SKIPPED openai_python_client: `{python} -c \"import openai\"` failed (pip install openai)");
        return;
    }
    let server = Server::start(&[]);
    let model = load_model();
    let want = local_answer(&model, CAPTION, Some("wide.png"), 8);
    let tmp = tempfile::tempdir().unwrap();
    let expected = tmp.path().join("expected.json");
    std::fs::write(
        &expected,
        json!({
            "image": image_path("wide.png"),
            "prompt": CAPTION,
            "max_tokens": 8,
            "text": want.text,
            "prompt_tokens": want.prompt_tokens,
        })
        .to_string(),
    )
    .unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/openai_client.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(format!("http://{}/v1", server.addr))
        .arg(&expected)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("openai client: ok"), "{stdout}\n{stderr}");
}

/// A follow-up request that sends back the previous answer verbatim reuses the worker's KV cache:
/// only the new turn is prefilled, and the answer is the one a continuing local `Chat` gives.
#[test]
fn follow_up_turn_reuses_the_prompt_cache() {
    let server = Server::start(&[]);
    let model = load_model();
    let bytes = std::fs::read(image_path("wide.png")).unwrap();
    let img = pilimage::decode_rgb(&bytes, &DecodeLimits::default()).unwrap();
    let mut chat = Chat::new(&model, PromptFormat::Chat);
    let first = chat
        .send(
            CAPTION,
            std::slice::from_ref(&img),
            &greedy_options(5),
            &mut |_| true,
        )
        .unwrap();
    let cached = chat.len();
    let second = chat
        .send("Tell me more.\n", &[], &greedy_options(5), &mut |_| true)
        .unwrap();

    let v1 = server.chat(&image_question(CAPTION, "wide.png", 5)).json();
    assert_eq!(content(&v1), first.text);
    assert_eq!(v1["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    let follow_up = json!({
        "model": "model",
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": CAPTION},
                {"type": "image_url", "image_url": {"url": data_uri("wide.png")}},
            ]},
            {"role": "assistant", "content": first.text},
            {"role": "user", "content": "Tell me more.\n"},
        ],
        "max_tokens": 5,
        "temperature": 0,
    });
    let v2 = server.chat(&follow_up).json();
    assert_eq!(
        v2["usage"]["prompt_tokens_details"]["cached_tokens"], cached,
        "{v2}"
    );
    assert_eq!(
        v2["usage"]["prompt_tokens"],
        cached + second.prompt_tokens,
        "{v2}"
    );
    assert_eq!(content(&v2), second.text);

    // A different history is not served from the cache.
    let mut other = follow_up.clone();
    other["messages"][1]["content"] = json!("Something else.");
    let v3 = server.chat(&other).json();
    assert_eq!(
        v3["usage"]["prompt_tokens_details"]["cached_tokens"], 0,
        "{v3}"
    );
}

/// A request whose prefill would not fit the server's memory budget gets 413 with the estimate,
/// before anything is allocated, and the server keeps answering smaller ones.
#[test]
fn a_request_over_the_memory_budget_gets_413() {
    // 48 MiB holds the tiny model and a small image; a 1920×1080 screenshot (2304 patches of
    // 30 px, Fuyu's largest size) needs more than that for its attention scores alone.
    let mut png = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_pixel(1920, 1080, image::Rgb([240, 240, 240]))
        .write_to(&mut png, image::ImageFormat::Png)
        .unwrap();
    let uri = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png.into_inner())
    );
    let server = Server::start_with_env(&[], &[("MONOVLM_MEMORY_LIMIT", "48M")]);
    let e = server.chat(&with_image_url(&uri)).error(413);
    assert_eq!(e["code"], "request_too_large", "{e}");
    let msg = e["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("MONOVLM_MEMORY_LIMIT") && msg.contains("new tokens"),
        "{e}"
    );
    let ok = server.chat(&image_question("Describe it.", "small.png", 2));
    assert_eq!(ok.status, 200, "{:?}", ok.json());
}
