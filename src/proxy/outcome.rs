//! How a request ended, as telemetry records it: the outcome a refusal is counted as, and the
//! final status the client was sent.
//!
//! Invariant: an interim `100 Continue` is never a final status, so a refusal decided after it
//! is still sent, and a client that got only the interim answer is recorded with status 0.

use pingora::prelude::Session;

use crate::denial::Denial;
use crate::limits::Denied;
use crate::telemetry::Outcome;

/// The final status the client was sent, if any: a `100 Continue` is not an answer, and a
/// refusal may still follow it.
pub fn final_status(session: &Session) -> Option<u16> {
    session
        .response_written()
        .map(|r| r.status)
        .filter(|status| !status.is_informational())
        .map(|status| status.as_u16())
}

/// How a refusal is counted: the mapping `send` applies when it answers one, also for a
/// refusal decided after the answer could no longer be sent.
pub fn outcome_of(denial: &Denial) -> Outcome {
    match denial {
        Denial::TooLarge { .. } => Outcome::TooLarge,
        Denial::UpstreamUnreachable | Denial::UpstreamTimeout => Outcome::UpstreamError,
        Denial::Limited(d) => Outcome::RateLimited {
            concurrency: matches!(d, Denied::Concurrency { .. }),
        },
        Denial::AuthThrottled { .. } => Outcome::RateLimited { concurrency: false },
        _ => Outcome::Denied,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_by_what_refused_them() {
        assert_eq!(
            outcome_of(&Denial::TooLarge { limit: 1 }),
            Outcome::TooLarge
        );
        assert_eq!(outcome_of(&Denial::UpstreamTimeout), Outcome::UpstreamError);
        assert_eq!(outcome_of(&Denial::MethodNotAllowed), Outcome::Denied);
        assert_eq!(outcome_of(&Denial::SessionNotFound), Outcome::Denied);
    }
}
