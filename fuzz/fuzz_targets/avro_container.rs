#![no_main]
// An Avro object container file: every record an event or a dead-letter reason, and the
// reader's memory bounded whatever the header and block sizes claim.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lockstep::decode::avro::read_container(data, |record| {
        if let Ok(ev) = record {
            assert!(ev.validate().is_ok());
        }
    });
});
