#![no_main]
lockstep_fuzz::target!(CanonicalJson);
