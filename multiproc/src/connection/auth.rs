//! The authkey handshake: mutual challenge-response with HMAC-SHA256, as
//! Python's `multiprocessing.connection` does it, over frames with a small
//! size limit and a deadline.

use std::os::fd::BorrowedFd;
use std::time::Instant;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::transfer::frame;
use crate::{Error, Result};

const CHALLENGE: &[u8] = b"#CHALLENGE#";
const WELCOME: &[u8] = b"#WELCOME#";
const FAILURE: &[u8] = b"#FAILURE#";
const NONCE: usize = 32;
/// No handshake message is larger than this.
const MAX: u64 = 256;

fn mac(key: &[u8]) -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length")
}

fn receive(sock: BorrowedFd<'_>, deadline: Option<Instant>) -> Result<Vec<u8>> {
    match frame::recv_frame(sock, MAX, deadline)? {
        Some(frame) if frame.fds.is_empty() => Ok(frame.payload),
        Some(_) => Err(Error::protocol("descriptors during the handshake")),
        None => Err(Error::Disconnected),
    }
}

/// Challenges the peer to prove it knows `key`.
fn deliver_challenge(sock: BorrowedFd<'_>, key: &[u8], deadline: Option<Instant>) -> Result<()> {
    let mut nonce = [0u8; NONCE];
    rustix::rand::getrandom(&mut nonce, rustix::rand::GetRandomFlags::empty())
        .map_err(|e| Error::Os { op: "draw a random challenge", source: e.into() })?;
    frame::send_frame(sock, &[CHALLENGE, &nonce], &[])?;
    let answer = receive(sock, deadline)?;
    let mut expected = mac(key);
    expected.update(&nonce);
    // Constant-time comparison.
    if expected.verify_slice(&answer).is_ok() {
        frame::send_frame(sock, &[WELCOME], &[])
    } else {
        let _ = frame::send_frame(sock, &[FAILURE], &[]);
        Err(Error::AuthenticationFailed)
    }
}

/// Proves to the peer that we know `key`.
fn answer_challenge(sock: BorrowedFd<'_>, key: &[u8], deadline: Option<Instant>) -> Result<()> {
    let challenge = receive(sock, deadline)?;
    let nonce = challenge
        .strip_prefix(CHALLENGE)
        .filter(|nonce| nonce.len() == NONCE)
        .ok_or_else(|| Error::protocol("malformed authentication challenge"))?;
    let mut answer = mac(key);
    answer.update(nonce);
    frame::send_frame(sock, &[&answer.finalize().into_bytes()], &[])?;
    match receive(sock, deadline)?.as_slice() {
        WELCOME => Ok(()),
        _ => Err(Error::AuthenticationFailed),
    }
}

/// The server's half: challenge first, then answer.
pub(crate) fn server(sock: BorrowedFd<'_>, key: &[u8], deadline: Option<Instant>) -> Result<()> {
    deliver_challenge(sock, key, deadline)?;
    answer_challenge(sock, key, deadline)
}

/// The client's half: answer first, then challenge.
pub(crate) fn client(sock: BorrowedFd<'_>, key: &[u8], deadline: Option<Instant>) -> Result<()> {
    answer_challenge(sock, key, deadline)?;
    deliver_challenge(sock, key, deadline)
}
