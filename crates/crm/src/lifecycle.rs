//! Where a lead is in the shop's process, and which moves are allowed.
//!
//! new → contacted → quoted → accepted → booked → in service → closed won; closed lost from
//! any open stage, with a reason. An advisor may skip ahead (an owner who calls and books at
//! once goes from new to booked) but never back: a step back would hide what happened, and
//! the audit trail is what the shop trusts. A closed lead stays closed; the same problem
//! coming back makes a new lead.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    New,
    Contacted,
    Quoted,
    Accepted,
    Booked,
    InService,
    ClosedWon,
    ClosedLost,
}

/// Why a move is refused, in words an advisor understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoveError {
    #[error("the lead is closed ({0}); a new fault makes a new lead")]
    Closed(Stage),
    #[error("a lead cannot go back from {from} to {to}")]
    Backwards { from: Stage, to: Stage },
    #[error("a lead is won only once the car is booked or in service (it is {0})")]
    WonTooEarly(Stage),
    #[error("closing a lead as lost needs a reason")]
    LostWithoutReason,
}

impl Stage {
    pub const ALL: [Stage; 8] = [
        Stage::New,
        Stage::Contacted,
        Stage::Quoted,
        Stage::Accepted,
        Stage::Booked,
        Stage::InService,
        Stage::ClosedWon,
        Stage::ClosedLost,
    ];

    /// The name stored in the database and shown in the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Stage::New => "new",
            Stage::Contacted => "contacted",
            Stage::Quoted => "quoted",
            Stage::Accepted => "accepted",
            Stage::Booked => "booked",
            Stage::InService => "in_service",
            Stage::ClosedWon => "closed_won",
            Stage::ClosedLost => "closed_lost",
        }
    }

    pub fn parse(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn is_closed(self) -> bool {
        matches!(self, Stage::ClosedWon | Stage::ClosedLost)
    }

    /// Checks a move from `self` to `to`; moving to the stage it is in is a no-op the caller
    /// can skip, and allowed.
    pub fn check_move(self, to: Stage, reason: &str) -> Result<(), MoveError> {
        if self == to {
            return Ok(());
        }
        if self.is_closed() {
            return Err(MoveError::Closed(self));
        }
        match to {
            Stage::ClosedLost if reason.trim().is_empty() => Err(MoveError::LostWithoutReason),
            Stage::ClosedLost => Ok(()),
            Stage::ClosedWon if self < Stage::Booked => Err(MoveError::WonTooEarly(self)),
            _ if to < self => Err(MoveError::Backwards { from: self, to }),
            _ => Ok(()),
        }
    }

    /// Moves forward to `to` when that is ahead of `self` (quoting, accepting and booking
    /// advance a lead without pulling one that is further along back).
    pub fn advance(self, to: Stage) -> Stage {
        if self.is_closed() || to <= self {
            self
        } else {
            to
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name().replace('_', " "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_moves_and_skips_are_allowed() {
        assert_eq!(Stage::New.check_move(Stage::Contacted, ""), Ok(()));
        assert_eq!(Stage::New.check_move(Stage::Booked, ""), Ok(()));
        assert_eq!(Stage::Booked.check_move(Stage::InService, ""), Ok(()));
        assert_eq!(Stage::InService.check_move(Stage::ClosedWon, ""), Ok(()));
        assert_eq!(Stage::Booked.check_move(Stage::ClosedWon, ""), Ok(()));
    }

    #[test]
    fn refused_moves_say_why() {
        assert_eq!(
            Stage::Quoted.check_move(Stage::Contacted, ""),
            Err(MoveError::Backwards {
                from: Stage::Quoted,
                to: Stage::Contacted
            })
        );
        assert_eq!(
            Stage::Quoted.check_move(Stage::ClosedWon, ""),
            Err(MoveError::WonTooEarly(Stage::Quoted))
        );
        assert_eq!(
            Stage::New.check_move(Stage::ClosedLost, " "),
            Err(MoveError::LostWithoutReason)
        );
        assert_eq!(
            Stage::New.check_move(Stage::ClosedLost, "sold the car"),
            Ok(())
        );
        assert_eq!(
            Stage::ClosedLost.check_move(Stage::New, ""),
            Err(MoveError::Closed(Stage::ClosedLost))
        );
        assert_eq!(
            Stage::ClosedWon
                .check_move(Stage::ClosedLost, "x")
                .unwrap_err()
                .to_string(),
            "the lead is closed (closed won); a new fault makes a new lead"
        );
    }

    #[test]
    fn advance_never_pulls_back() {
        assert_eq!(Stage::New.advance(Stage::Quoted), Stage::Quoted);
        assert_eq!(Stage::Booked.advance(Stage::Quoted), Stage::Booked);
        assert_eq!(
            Stage::ClosedLost.advance(Stage::Accepted),
            Stage::ClosedLost
        );
    }

    #[test]
    fn names_round_trip() {
        for s in Stage::ALL {
            assert_eq!(Stage::parse(s.name()), Some(s));
        }
        assert_eq!(Stage::parse("open"), None);
    }
}
