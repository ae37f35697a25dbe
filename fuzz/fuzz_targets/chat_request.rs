//! The server's request parsing: the JSON body into the wire types, then the conversion into a
//! conversation (images decoded from data: URIs), generation options and stop strings. The app is
//! a binary crate, so its `serve` modules that hold no server state are compiled in here from
//! their source files (nothing is copied).
#![no_main]

// At the crate root, so that their `super::errors` etc. resolve as in the app.
#[allow(dead_code, unused_imports)]
#[path = "../../app/src/serve/convert.rs"]
mod convert;
#[allow(dead_code, unused_imports)]
#[path = "../../app/src/serve/errors.rs"]
mod errors;
#[allow(dead_code, unused_imports)]
#[path = "../../app/src/serve/limits.rs"]
mod limits;
#[allow(dead_code, unused_imports)]
#[path = "../../app/src/serve/wire.rs"]
mod wire;

use libfuzzer_sys::fuzz_target;
use limits::Limits;
use wire::ChatRequest;

fuzz_target!(|data: &[u8]| {
    // `monovlm serve` defaults, with a smaller pixel cap so one execution stays fast.
    let limits = Limits {
        max_body_bytes: 32 << 20,
        max_image_pixels: 4_000_000,
        max_tokens: 512,
        max_images: 4,
        max_stops: 16,
    };
    if data.len() > limits.max_body_bytes {
        return;
    }
    let Ok(mut req) = serde_json::from_slice::<ChatRequest>(data) else {
        return;
    };
    let _ = convert::conversation(&req.messages, &limits);
    let _ = convert::generation_options(&req, &limits);
    let _ = convert::stop_strings(&mut req, &limits);
});
