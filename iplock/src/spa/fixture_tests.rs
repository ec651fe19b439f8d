//! The verifier against packets of the real fwknop client 2.6.10, kept in
//! `iplock/tests/fixtures/spa/` (made by `make-fixtures.sh` there, with
//! test-only keys).

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use proptest::prelude::*;

use crate::config::cidr::Cidr;
use crate::config::spa::{HmacType, KeyBytes, SpaSettings};
use crate::spa::{Grant, Reason, ReplayCache, verify};

const PACKETS: &str = include_str!("../../tests/fixtures/spa/packets.txt");
const KEYS: &str = include_str!("../../tests/fixtures/spa/keys.sh");
const PROTECTED: &[u16] = &[22, 2222];
const CLIENT: &str = "198.51.100.2";

fn key(name: &str) -> KeyBytes {
    let line = KEYS
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in keys.sh"));
    KeyBytes::new(
        base64::engine::general_purpose::STANDARD
            .decode(line)
            .unwrap(),
    )
}

/// A fixture's unix time of making and payload.
fn packet(name: &str) -> (u64, Vec<u8>) {
    let line = PACKETS
        .lines()
        .find(|l| l.split(' ').next() == Some(name))
        .unwrap_or_else(|| panic!("no fixture {name}"));
    let mut f = line.split(' ');
    f.next();
    let now = f.next().unwrap().parse().unwrap();
    (now, f.next().unwrap().as_bytes().to_vec())
}

fn sha256_keys() -> SpaSettings {
    SpaSettings {
        port: 62201,
        key: key("KEY_BASE64"),
        hmac_key: key("HMAC_KEY_BASE64"),
        hmac: HmacType::Sha256,
        max_age: Duration::from_secs(120),
        open_window: Duration::from_secs(30),
        allow_other_address: false,
        require_source_address: false,
        require_username: None,
        sources: Vec::new(),
        ignored: Vec::new(),
    }
}

fn sha512_keys() -> SpaSettings {
    SpaSettings {
        key: key("KEY512_BASE64"),
        hmac_key: key("HMAC512_KEY_BASE64"),
        hmac: HmacType::Sha512,
        ..sha256_keys()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn check(name: &str, spa: &SpaSettings, source: &str) -> Result<Grant, Reason> {
    let (now, payload) = packet(name);
    verify(
        &payload,
        ip(source),
        now,
        spa,
        PROTECTED,
        &ReplayCache::new(spa.max_age),
    )
    .map_err(|r| r.reason)
}

fn refused(name: &str, spa: &SpaSettings, source: &str, reason: Reason) {
    assert_eq!(check(name, spa, source).err(), Some(reason), "{name}");
}

#[test]
fn every_good_fixture_verifies() {
    let spa = sha256_keys();
    for name in [
        "good_sha256",
        "good_two_ports",
        "good_timeout",
        "good_long_timeout",
        "good_digest512",
    ] {
        let g = check(name, &spa, CLIENT).unwrap_or_else(|r| panic!("{name}: {r}"));
        assert_eq!(g.address, ip(CLIENT), "{name}");
        assert_eq!(g.user, "alice", "{name}");
        assert_eq!(g.access[0].to_string(), "tcp/22", "{name}");
        assert!(g.timestamp.abs_diff(packet(name).0) <= 2, "{name}");
    }
    let g = check("good_two_ports", &spa, CLIENT).unwrap();
    let ports: Vec<u16> = g.access.iter().map(|a| a.port).collect();
    assert_eq!(ports, [22, 2222]);
    // The client's timeout shortens the window and never lengthens it.
    assert_eq!(
        check("good_sha256", &spa, CLIENT).unwrap().window,
        Duration::from_secs(30)
    );
    assert_eq!(
        check("good_timeout", &spa, CLIENT).unwrap().window,
        Duration::from_secs(5)
    );
    assert_eq!(
        check("good_long_timeout", &spa, CLIENT).unwrap().window,
        Duration::from_secs(30)
    );
    // 0.0.0.0 (-s) opens the packet's own source.
    let g = check("good_source", &spa, "192.0.2.77").unwrap();
    assert_eq!(g.address, ip("192.0.2.77"));
    let g = check("good_source", &spa, "2001:db8::7").unwrap();
    assert_eq!(g.address, ip("2001:db8::7"));
    // An IPv4-mapped source is its IPv4 address.
    let g = check("good_sha256", &spa, "::ffff:198.51.100.2").unwrap();
    assert_eq!(g.address, ip(CLIENT));

    let g = check("good_sha512", &sha512_keys(), CLIENT).unwrap();
    assert_eq!(g.user, "alice");
    let pass = SpaSettings {
        key: KeyBytes::new(b"test passphrase".to_vec()),
        ..sha256_keys()
    };
    check("good_passphrase", &pass, CLIENT).unwrap();
}

#[test]
fn wrong_keys_and_hmac_types_are_refused() {
    let wrong_key = SpaSettings {
        key: key("KEY512_BASE64"),
        ..sha256_keys()
    };
    refused("good_sha256", &wrong_key, CLIENT, Reason::BadDecrypt);
    refused(
        "good_passphrase",
        &sha256_keys(),
        CLIENT,
        Reason::BadDecrypt,
    );
    let wrong_hmac = SpaSettings {
        hmac_key: key("HMAC512_KEY_BASE64"),
        ..sha256_keys()
    };
    refused("good_sha256", &wrong_hmac, CLIENT, Reason::BadHmac);
    // sha512 packets with a sha256 key and the other way round.
    let as_256 = SpaSettings {
        hmac: HmacType::Sha256,
        ..sha512_keys()
    };
    refused("good_sha512", &as_256, CLIENT, Reason::BadHmac);
    let as_512 = SpaSettings {
        hmac: HmacType::Sha512,
        ..sha256_keys()
    };
    refused("good_sha256", &as_512, CLIENT, Reason::BadHmac);
    // A packet made without --use-hmac has no HMAC to check.
    refused("no_hmac", &sha256_keys(), CLIENT, Reason::BadHmac);
}

#[test]
fn timestamps_out_of_bounds_are_refused() {
    let spa = sha256_keys();
    refused("stale", &spa, CLIENT, Reason::Stale);
    refused("future", &spa, CLIENT, Reason::Future);
    let (now, payload) = packet("good_sha256");
    let cache = ReplayCache::new(spa.max_age);
    let at = |t| verify(&payload, ip(CLIENT), t, &spa, PROTECTED, &cache);
    assert!(at(now + 100).is_ok());
    let r = at(now + 200).unwrap_err();
    assert_eq!(r.reason, Reason::Stale);
    assert_eq!(
        r.user.as_deref(),
        Some("alice"),
        "a refusal after decryption names the user"
    );
    assert_eq!(at(now - 200).unwrap_err().reason, Reason::Future);
}

#[test]
fn a_second_verify_of_the_same_payload_is_a_replay() {
    let spa = sha256_keys();
    let (now, payload) = packet("good_sha256");
    let mut cache = ReplayCache::new(spa.max_age);
    let g = verify(&payload, ip(CLIENT), now, &spa, PROTECTED, &cache).unwrap();
    cache.insert(g.digest, now);
    let r = verify(&payload, ip(CLIENT), now + 1, &spa, PROTECTED, &cache).unwrap_err();
    assert_eq!((r.reason, r.user), (Reason::Replay, None));
    // Checked before the HMAC: even with the wrong HMAC key it is a replay.
    let other = SpaSettings {
        hmac_key: key("HMAC512_KEY_BASE64"),
        ..sha256_keys()
    };
    let r = verify(&payload, ip(CLIENT), now + 1, &other, PROTECTED, &cache).unwrap_err();
    assert_eq!(r.reason, Reason::Replay);
    // The prefix put back to change the digest is refused for itself.
    let mut prefixed = b"U2FsdGVkX1".to_vec();
    prefixed.extend_from_slice(&payload);
    let r = verify(&prefixed, ip(CLIENT), now + 1, &spa, PROTECTED, &cache).unwrap_err();
    assert_eq!(r.reason, Reason::Prefixed);
    // A last HMAC character with other low bits decodes to the same bytes
    // for a lenient decoder; it must not pass as a new packet.
    let mut twin = payload.clone();
    let last = twin.last_mut().unwrap();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let i = alphabet.iter().position(|c| c == last).unwrap();
    *last = alphabet[(i & !3) | ((i + 1) & 3)];
    let r = verify(&twin, ip(CLIENT), now + 1, &spa, PROTECTED, &cache).unwrap_err();
    assert_eq!(r.reason, Reason::BadHmac);
}

#[test]
fn messages_iplock_does_not_serve_are_refused() {
    let spa = sha256_keys();
    refused("command", &spa, CLIENT, Reason::CommandMessage);
    refused("nat", &spa, CLIENT, Reason::NatMessage);
    refused("port_80", &spa, CLIENT, Reason::PortNotProtected);
    let only_ssh = |name| {
        let (now, payload) = packet(name);
        verify(
            &payload,
            ip(CLIENT),
            now,
            &spa,
            &[22],
            &ReplayCache::new(spa.max_age),
        )
        .map_err(|r| r.reason)
    };
    assert_eq!(
        only_ssh("good_two_ports").err(),
        Some(Reason::PortNotProtected)
    );
}

#[test]
fn addresses_users_and_sources() {
    let spa = sha256_keys();
    refused("other_address", &spa, CLIENT, Reason::OtherAddress);
    refused("good_sha256", &spa, "192.0.2.1", Reason::OtherAddress);
    let lax = SpaSettings {
        allow_other_address: true,
        ..sha256_keys()
    };
    assert_eq!(
        check("other_address", &lax, CLIENT).unwrap().address,
        ip("203.0.113.9")
    );
    let strict = SpaSettings {
        require_source_address: true,
        ..sha256_keys()
    };
    refused("good_source", &strict, CLIENT, Reason::NoSourceAddress);
    check("good_sha256", &strict, CLIENT).unwrap();
    let bob = SpaSettings {
        require_username: Some("bob".into()),
        ..sha256_keys()
    };
    refused("good_sha256", &bob, CLIENT, Reason::WrongUser);
    let sources = SpaSettings {
        sources: vec![Cidr::parse("192.0.2.0/24").unwrap()],
        ..sha256_keys()
    };
    refused("good_source", &sources, CLIENT, Reason::SourceNotAllowed);
    check("good_source", &sources, "192.0.2.9").unwrap();
}

#[test]
fn damaged_payloads_are_refused() {
    let spa = sha256_keys();
    let (now, payload) = packet("good_sha256");
    let cache = ReplayCache::new(spa.max_age);
    let reason = |p: &[u8]| {
        verify(p, ip(CLIENT), now, &spa, PROTECTED, &cache)
            .unwrap_err()
            .reason
    };
    assert_eq!(reason(&payload[..payload.len() - 1]), Reason::BadHmac);
    assert_eq!(reason(&payload[1..]), Reason::BadHmac);
    assert_eq!(reason(&payload[..139]), Reason::TooShort);
    assert_eq!(reason(b""), Reason::TooShort);
    assert_eq!(reason(&vec![b'A'; 1501]), Reason::TooLong);
    assert_eq!(reason(&vec![b'A'; 1500]), Reason::BadHmac);
    let random: Vec<u8> = (0..400u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert_eq!(reason(&random), Reason::NotBase64);
    let mut flipped = payload.clone();
    flipped[50] = if flipped[50] == b'A' { b'B' } else { b'A' };
    assert_eq!(reason(&flipped), Reason::BadHmac);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
        let spa = sha256_keys();
        let r = verify(&bytes, ip(CLIENT), 1_796_180_541, &spa, PROTECTED, &ReplayCache::new(spa.max_age));
        prop_assert!(r.is_err());
    }

    #[test]
    fn random_base64_never_panics(text in "[A-Za-z0-9+/=]{100,1600}") {
        let spa = sha256_keys();
        let r = verify(text.as_bytes(), ip(CLIENT), 1_796_180_541, &spa, PROTECTED, &ReplayCache::new(spa.max_age));
        prop_assert!(r.is_err());
    }

    #[test]
    fn changed_fixtures_never_verify(at in 0usize..200, byte in any::<u8>()) {
        let spa = sha256_keys();
        let (now, mut payload) = packet("good_sha256");
        let at = at % payload.len();
        prop_assume!(payload[at] != byte);
        payload[at] = byte;
        let r = verify(&payload, ip(CLIENT), now, &spa, PROTECTED, &ReplayCache::new(spa.max_age));
        prop_assert!(r.is_err());
    }
}
