//! Fuzz targets of the adapters: each feeds arbitrary bytes to one native format's
//! normalizer, which must answer with events, a skip or a dead-letter reason — never a
//! panic. Run with `cargo +nightly fuzz run <format>` (see the Makefile's `fuzz`).

/// Defines the libFuzzer entry point for one [`lockstep::adapter::Format`] variant.
#[macro_export]
macro_rules! target {
    ($format:ident) => {
        libfuzzer_sys::fuzz_target!(|data: &[u8]| {
            use lockstep::adapter::{Format, Normalized, Normalizer};
            let normalizer = Normalizer::new(Format::$format, None, Default::default());
            if let Ok(Normalized::Events(events)) = normalizer.normalize(data) {
                for ev in events {
                    assert!(ev.validate().is_ok());
                }
            }
        });
    };
}
