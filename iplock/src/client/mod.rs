//! What runs on the administrator's side: the knock client and the
//! sequence calculator.

pub mod calc;
pub mod knock_client;
