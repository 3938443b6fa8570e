//! Any text as genq.toml: a config or an error naming a key, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let vars = [(
            "GENQ_FUZZ_SECRET".to_string(),
            "0123456789abcdef0123".to_string(),
        )]
        .into();
        let _ = genq_config::Config::from_toml("fuzz.toml", text, &vars);
    }
});
