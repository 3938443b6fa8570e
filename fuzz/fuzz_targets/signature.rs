//! The `Genq-Signature` header: any text is parsed or refused without a panic, and only a
//! header genq made for this body and secret verifies.
#![no_main]

use genq_core::signature;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    let body = b"{\"id\":\"e1\"}";
    let _ = signature::parse(header);
    if signature::verify(b"fuzz-secret", header, body, 1_700_000_000, 300).is_ok() {
        // Only possible if the header carries a tag genq made for this secret and body.
        let (t, _) = signature::parse(header).unwrap();
        let made = signature::sign(b"fuzz-secret", t, body);
        let tag = made.split("v1=").nth(1).unwrap();
        assert!(
            header.to_ascii_lowercase().contains(tag),
            "{header} verified without the right tag"
        );
    }
    let made = signature::sign(header.as_bytes(), 1_700_000_000, data);
    assert_eq!(
        signature::verify(header.as_bytes(), &made, data, 1_700_000_000, 0),
        Ok(())
    );
});
