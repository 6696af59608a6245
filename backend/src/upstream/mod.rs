//! REST APIs behind the bridge (`[[upstreams]]`): a call under an upstream's prefix is
//! authenticated like `/api` (Bearer token, trust engine, route policies), then sent on with the
//! token that API accepts (`token`), its claims as headers (`forward_claims`), and without
//! anything the caller must not pass on (`headers`). Bodies stream both ways.

pub mod headers;
pub mod outgoing_token;
pub mod proxy;
pub mod routes;
