#![no_main]
lockstep_fuzz::target!(K8sAudit);
