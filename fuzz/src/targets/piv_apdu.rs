//! The virtual PIV card (`vpiv`, what trustd's PIV tests talk to through pcscd) on any
//! sequence of command APDUs: its APDU parsing and the TLV parsing of every command's data.
//!
//! Each part is one APDU (its name is ignored); a part named `touch` makes the card's touch
//! sensor answer yes from then on. The law: every answer carries a status word, and nothing
//! the host sends makes the card panic.

use std::time::Duration;

use trustd_vpiv::piv::{PivCard, TouchSensor};

use crate::framing;

struct Sensor(bool);

impl TouchSensor for Sensor {
    fn wait(&self, _timeout: Duration) -> bool {
        self.0
    }
}

pub fn run(data: &[u8]) {
    let mut card = PivCard::new(12345678);
    let mut touched = false;
    for (name, apdu) in framing::split(data) {
        touched |= name == b"touch";
        let answer = card.process(apdu, &Sensor(touched));
        assert!(answer.len() >= 2, "an answer without a status word");
    }
}
