//! proxy-wasm glue: turns Envoy callbacks into calls on the pure core (`flow::Filter`) and its
//! outcomes into hostcalls. Nothing here decides anything.

mod host;
mod http;
mod root;

use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    // After set_log_level (which installs the SDK's hook): a panic traps this worker's VM, so say
    // so loudly. Panic messages come from our code and never carry token material.
    std::panic::set_hook(Box::new(|info| {
        let _ = proxy_wasm::hostcalls::log(
            LogLevel::Critical,
            &format!("token-exchange-filter: panic, this worker's VM stops: {info}"),
        );
    }));
    proxy_wasm::set_root_context(|id| Box::new(root::Root::new(id)));
}}
