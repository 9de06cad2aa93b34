/work/main/bench/noop/target/wasm32-wasip1/release/deps/equivalent-fc393b1957dd6e59.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/equivalent-1.0.3/src/lib.rs

/work/main/bench/noop/target/wasm32-wasip1/release/deps/libequivalent-fc393b1957dd6e59.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/equivalent-1.0.3/src/lib.rs

/work/main/bench/noop/target/wasm32-wasip1/release/deps/libequivalent-fc393b1957dd6e59.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/equivalent-1.0.3/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/equivalent-1.0.3/src/lib.rs:
