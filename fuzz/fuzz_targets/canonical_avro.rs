#![no_main]
lockstep_fuzz::target!(CanonicalAvro);
