//! The credential for the next hop, per route: the original token forwarded as it came (the
//! shared-token pattern; `plan::forwarded`), a token exchanged at the STS for the route's target
//! (`exchange`), one the filter signs itself (`mint`), or one the verified token carries for the
//! route's audience (`embedded`). Each further kind (mint, nested, embedded, Transaction Token) gets its
//! own file here.

pub mod embedded;
pub mod exchange;
pub mod mint;
