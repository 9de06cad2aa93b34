/work/main/bench/noop/target/wasm32-wasip1/release/noop_filter.wasm: /work/main/bench/noop/src/lib.rs
