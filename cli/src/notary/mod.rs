//! trustctl's side of changing trust data: which trustd keys a repository's roles get (their
//! names, the backend they are generated on), and the Notary library's changes run with
//! trustd as the signer. What a change does is the library's (`trustd_notary::publish`).

pub mod draft;
pub mod keys;
pub mod publish;
pub mod rotate;
