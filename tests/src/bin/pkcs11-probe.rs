//! `trustd-e2e-pkcs11-probe LABEL`: loads $PROBE_MODULE (SoftHSM2 by default), logs in to the
//! token $PROBE_TOKEN with $PROBE_PIN, then tries to read the private key LABEL's secret value the
//! way any PKCS#11 application could (C_GetAttributeValue on CKA_VALUE / CKA_PRIVATE_EXPONENT).
//! Prints one JSON object describing what the token answered. Runs as its own process so its
//! C_Initialize sees only this token.

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass};
use cryptoki::session::UserType;

fn main() {
    let label = std::env::args()
        .nth(1)
        .expect("usage: trustd-e2e-pkcs11-probe LABEL");
    let token = std::env::var("PROBE_TOKEN").expect("PROBE_TOKEN");
    let pin = std::env::var("PROBE_PIN").expect("PROBE_PIN");
    let module = std::env::var("PROBE_MODULE").unwrap_or_else(|_| trustd_e2e::MODULE.into());
    let ctx = Pkcs11::new(module).unwrap();
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim() == token)
        .expect("token present");
    let session = ctx.open_ro_session(slot).unwrap();
    session.login(UserType::User, Some(&pin.into())).unwrap();
    let key = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(label.into_bytes()),
        ])
        .unwrap()[0];
    let info = |t: AttributeType| match session.get_attribute_info(key, &[t]).unwrap()[0] {
        AttributeInfo::Sensitive => "sensitive".to_owned(),
        AttributeInfo::TypeInvalid => "type-invalid".to_owned(),
        AttributeInfo::Unavailable => "unavailable".to_owned(),
        AttributeInfo::Available(n) => format!("available:{n}"),
    };
    let values = session
        .get_attributes(key, &[AttributeType::Value, AttributeType::PrivateExponent])
        .unwrap_or_default();
    let flags = session
        .get_attributes(
            key,
            &[
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::NeverExtractable,
                AttributeType::Private,
            ],
        )
        .unwrap();
    let flag = |wanted: fn(&Attribute) -> Option<bool>| flags.iter().find_map(wanted);
    println!(
        "{}",
        serde_json::json!({
            "value": info(AttributeType::Value),
            "private_exponent": info(AttributeType::PrivateExponent),
            "secret_bytes_returned": values.len(),
            "sensitive": flag(|a| if let Attribute::Sensitive(v) = a { Some(*v) } else { None }),
            "extractable": flag(|a| if let Attribute::Extractable(v) = a { Some(*v) } else { None }),
            "never_extractable": flag(|a| if let Attribute::NeverExtractable(v) = a { Some(*v) } else { None }),
            "private": flag(|a| if let Attribute::Private(v) = a { Some(*v) } else { None }),
        })
    );
}
