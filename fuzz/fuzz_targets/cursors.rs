//! List cursors: any string either decodes to what encodes back to it, or is refused.
#![no_main]

use genq_api::cursor;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = cursor::decode_jobs(text) {
        assert_eq!(cursor::encode_jobs(&id), text);
    }
    if let Ok(n) = cursor::decode_ledger(text) {
        assert_eq!(cursor::encode_ledger(n), text);
    }
});
