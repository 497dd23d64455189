#![no_main]
lockstep_fuzz::target!(EntraAudit);
