mod vectors;
mod config_tests;
mod flow_tests;
mod support;
mod exchange_flow_tests;
mod attack_tests;
mod review_findings_tests;
mod mint_tests;
