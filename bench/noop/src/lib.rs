//! The proxy-wasm floor for the benchmark, and a lab for the price of single host calls.
//!
//! Without a plugin configuration it does nothing but return `Continue`: the cost of crossing the
//! proxy-wasm ABI for one request, and no more. With one, a comma-separated list of host calls to
//! make on every request, in order (bench/hostcalls.py):
//! `hdr:NAME` (read one request header), `hdrs` (read the whole header map), `pairs:NAME` (the
//! whole map in one host call, NAME's value found in its serialized bytes, nothing copied), `time`,
//! `shared:KEY` (read a shared-data key, written once at configure time), `set:NAME` (set a request
//! header), `del:NAME` (remove a request header), `sha:N` (SHA-256 of N bytes in the VM, no host
//! call), `b3:N` (BLAKE3 of N bytes keyed, as the filter names a token's shared-cache entry: its
//! price in Envoy's V8); `OP*N` repeats one N times.
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MapType};
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| Box::new(Root { ops: Rc::new(Vec::new()) }));
}}

enum Op {
    Hdr(String),
    Hdrs,
    Pairs(String),
    Time,
    Shared(String),
    Set(String),
    Del(String),
    Sha(Vec<u8>),
    B3(Vec<u8>),
}

struct Root {
    ops: Rc<Vec<Op>>,
}

impl Context for Root {}
impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        if size == 0 {
            return true;
        }
        let conf = hostcalls::get_buffer(proxy_wasm::types::BufferType::PluginConfiguration, 0, size).ok().flatten().unwrap_or_default();
        let conf = String::from_utf8_lossy(&conf).into_owned();
        let mut ops = Vec::new();
        for op in conf.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (op, times) = match op.split_once('*') {
                Some((o, n)) => (o, n.parse::<usize>().unwrap_or(1)),
                None => (op, 1),
            };
            let (kind, arg) = op.split_once(':').unwrap_or((op, ""));
            for _ in 0..times {
            ops.push(match kind {
                "hdr" => Op::Hdr(arg.into()),
                "hdrs" => Op::Hdrs,
                "pairs" => Op::Pairs(arg.into()),
                "time" => Op::Time,
                "shared" => {
                    // A value the size of a cached claims entry.
                    let _ = hostcalls::set_shared_data(arg, Some(&[7u8; 160]), None);
                    Op::Shared(arg.into())
                }
                "set" => Op::Set(arg.into()),
                "del" => Op::Del(arg.into()),
                "sha" => Op::Sha(vec![b'a'; arg.parse().unwrap_or(0)]),
                "b3" => Op::B3(vec![b'a'; arg.parse().unwrap_or(0)]),
                _ => return false,
            });
            }
        }
        self.ops = Rc::new(ops);
        true
    }
    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Lab { ops: self.ops.clone() }))
    }
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Lab {
    ops: Rc<Vec<Op>>,
}
impl Context for Lab {}
impl HttpContext for Lab {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let mut sink = 0usize;
        for op in self.ops.iter() {
            match op {
                Op::Hdr(n) => sink += hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, n).ok().flatten().map_or(0, |v| v.len()),
                Op::Hdrs => sink += hostcalls::get_map_bytes(MapType::HttpRequestHeaders).map_or(0, |v| v.len()),
                Op::Pairs(n) => sink += pairs(n),
                Op::Time => sink += hostcalls::get_current_time().is_ok() as usize,
                Op::Shared(k) => sink += hostcalls::get_shared_data(k).ok().and_then(|(v, _)| v).map_or(0, |v| v.len()),
                Op::Set(n) => {
                    let _ = hostcalls::set_map_value_bytes(MapType::HttpRequestHeaders, n, Some(b"bench-user-0001"));
                }
                Op::Del(n) => {
                    let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, n);
                }
                Op::Sha(b) => {
                    use sha2::Digest;
                    sink += sha2::Sha256::digest(std::hint::black_box(b))[0] as usize;
                }
                Op::B3(b) => {
                    // As `authenticate::cache_key`: one keyed hash of the token alone (the
                    // key, made once per configuration there, covers the layout's version).
                    sink += blake3::keyed_hash(std::hint::black_box(&[7u8; 32]), std::hint::black_box(b)).as_bytes()[0] as usize;
                }
            }
        }
        std::hint::black_box(sink);
        Action::Continue
    }
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(map_type: u32, data: *mut *mut u8, size: *mut usize) -> u32;
}

/// The request's header map in one host call; `name`'s value length, found in place.
fn pairs(name: &str) -> usize {
    let (mut data, mut size) = (std::ptr::null_mut(), 0usize);
    // SAFETY: the host writes a buffer it allocated through this module's allocator.
    let buf = unsafe {
        if proxy_get_header_map_pairs(0, &mut data, &mut size) != 0 || data.is_null() {
            return 0;
        }
        Vec::from_raw_parts(data, size, size)
    };
    let word = |i: usize| buf.get(i..i + 4).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let n = word(0);
    let mut p = 4 + n * 8;
    for i in 0..n {
        let (k, v) = (word(4 + i * 8), word(8 + i * 8));
        if buf.get(p..p + k) == Some(name.as_bytes()) {
            return v;
        }
        p += k + v + 2;
    }
    0
}
