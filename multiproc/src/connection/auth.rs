//! The authkey handshake: a mutual challenge-response with HMAC-SHA256 in
//! which the two directions can never stand in for each other.
//!
//! Every connection opens with the listener's greeting, which says whether
//! it has a key, so that a key on one side only fails at once on both
//! (rather than the handshake's bytes arriving as the first message):
//!
//! ```text
//! without a key:
//! client -> server   "#OPEN#"         (sent at once, without waiting)
//! server -> client   "#OPEN#"
//!
//! with a key:
//! server -> client   "#CHALLENGE#" | Ns
//! client -> server   "#RESPONSE#"  | Nc | HMAC(key, CLIENT_LABEL | Ns | Nc)
//! server -> client   "#WELCOME#"   | HMAC(key, SERVER_LABEL | Ns | Nc)
//!                 or "#FAILURE#"
//! ```
//!
//! A keyless client meeting a keyed listener reads `#CHALLENGE#` and fails;
//! the listener reads its `#OPEN#` where a response belongs, answers
//! `#FAILURE#` and fails. A keyed client meeting a keyless listener reads
//! `#OPEN#`, answers `#KEYED#` and fails; so does the listener on reading
//! it. Neither side ever proceeds without the handshake the other expected.
//!
//! `Ns` and `Nc` are fresh 32-byte random nonces, one drawn by each side.
//! Each proof binds both nonces and names its direction, so a peer without
//! the key gains nothing by reflecting: a client only ever computes client
//! proofs, which no client accepts as a server's, and over a nonce of its
//! own that no other connection repeats. (Python's handshake answers every
//! challenge with the same construction, so a keyless server could copy a
//! client's challenge onto a second connection of the same client and
//! replay the answer.) The client proves first, so a server reveals its
//! proof only to clients that know the key. Every message is a frame of at
//! most [`MAX`] bytes, read before a deadline.

use std::os::fd::BorrowedFd;
use std::time::Instant;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::transfer::frame;
use crate::{Error, Result};

const CHALLENGE: &[u8] = b"#CHALLENGE#";
const RESPONSE: &[u8] = b"#RESPONSE#";
const WELCOME: &[u8] = b"#WELCOME#";
const FAILURE: &[u8] = b"#FAILURE#";
/// The greeting of a side without a key.
const OPEN: &[u8] = b"#OPEN#";
/// A keyed client's answer to a keyless listener's greeting.
const KEYED: &[u8] = b"#KEYED#";
/// What a client's proof says it is (fixed length, so that the input to
/// the HMAC splits one way only).
const CLIENT_LABEL: &[u8; 32] = b"multiproc auth v1: client proof\0";
/// What a server's proof says it is.
const SERVER_LABEL: &[u8; 32] = b"multiproc auth v1: server proof\0";
const NONCE: usize = 32;
const PROOF: usize = 32;
/// No handshake message is larger than this.
const MAX: u64 = 256;

type Nonce = [u8; NONCE];

/// The proof for one direction: HMAC-SHA256 over the direction's label and
/// both nonces.
fn proof(key: &[u8], label: &[u8; 32], server_nonce: &Nonce, client_nonce: &Nonce) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(label);
    mac.update(server_nonce);
    mac.update(client_nonce);
    mac
}

fn fresh_nonce() -> Result<Nonce> {
    let mut nonce = [0u8; NONCE];
    rustix::rand::getrandom(&mut nonce, rustix::rand::GetRandomFlags::empty()).map_err(|e| {
        Error::Os { op: "draw a random challenge", address: None, source: e.into() }
    })?;
    Ok(nonce)
}

fn receive(sock: BorrowedFd<'_>, deadline: Option<Instant>) -> Result<Vec<u8>> {
    match frame::recv_frame(sock, MAX, deadline)? {
        Some(frame) if frame.fds.is_empty() => Ok(frame.payload),
        Some(_) => Err(Error::protocol("descriptors during the handshake")),
        None => Err(Error::Disconnected),
    }
}

/// Splits `message` into its `prefix`'s body of exactly `len` bytes.
fn body<'a>(message: &'a [u8], prefix: &[u8], len: usize) -> Option<&'a [u8]> {
    message.strip_prefix(prefix).filter(|body| body.len() == len)
}

/// The server's half: challenges, checks the client's proof, then proves
/// itself.
pub(crate) fn server(sock: BorrowedFd<'_>, key: &[u8], deadline: Option<Instant>) -> Result<()> {
    let server_nonce = fresh_nonce()?;
    frame::send_frame(sock, &[CHALLENGE, &server_nonce], &[])?;
    let response = receive(sock, deadline)?;
    if response == OPEN {
        // A client without a key.
        let _ = frame::send_frame(sock, &[FAILURE], &[]);
        return Err(Error::AuthenticationFailed);
    }
    let Some(response) = body(&response, RESPONSE, NONCE + PROOF) else {
        let _ = frame::send_frame(sock, &[FAILURE], &[]);
        return Err(Error::protocol("malformed authentication response"));
    };
    let (client_nonce, client_proof) = response.split_at(NONCE);
    let client_nonce: Nonce = client_nonce.try_into().unwrap_or([0; NONCE]);
    // Constant-time comparison.
    let expected = proof(key, CLIENT_LABEL, &server_nonce, &client_nonce);
    if expected.verify_slice(client_proof).is_err() {
        let _ = frame::send_frame(sock, &[FAILURE], &[]);
        return Err(Error::AuthenticationFailed);
    }
    let ours = proof(key, SERVER_LABEL, &server_nonce, &client_nonce).finalize().into_bytes();
    frame::send_frame(sock, &[WELCOME, &ours], &[])
}

/// The client's half: answers the challenge with its own nonce and proof,
/// then checks the server's proof.
pub(crate) fn client(sock: BorrowedFd<'_>, key: &[u8], deadline: Option<Instant>) -> Result<()> {
    let challenge = receive(sock, deadline)?;
    if challenge == OPEN {
        // A listener without a key: it must not think we trust it.
        let _ = frame::send_frame(sock, &[KEYED], &[]);
        return Err(Error::AuthenticationFailed);
    }
    let server_nonce: Nonce = body(&challenge, CHALLENGE, NONCE)
        .and_then(|nonce| nonce.try_into().ok())
        .ok_or_else(|| Error::protocol("malformed authentication challenge"))?;
    let client_nonce = fresh_nonce()?;
    let ours = proof(key, CLIENT_LABEL, &server_nonce, &client_nonce).finalize().into_bytes();
    frame::send_frame(sock, &[RESPONSE, &[&client_nonce[..], &ours[..]].concat()], &[])?;
    let verdict = receive(sock, deadline)?;
    let Some(server_proof) = body(&verdict, WELCOME, PROOF) else {
        return Err(Error::AuthenticationFailed);
    };
    let expected = proof(key, SERVER_LABEL, &server_nonce, &client_nonce);
    expected.verify_slice(server_proof).map_err(|_| Error::AuthenticationFailed)
}

/// The greeting of a listener without a key: fails if the client has one.
pub(crate) fn open_server(sock: BorrowedFd<'_>, deadline: Option<Instant>) -> Result<()> {
    frame::send_frame(sock, &[OPEN], &[])?;
    match receive(sock, deadline)? {
        hello if hello == OPEN => Ok(()),
        keyed if keyed == KEYED => Err(Error::AuthenticationFailed),
        _ => Err(Error::protocol("malformed greeting")),
    }
}

/// The greeting of a client without a key: fails if the listener has one.
pub(crate) fn open_client(sock: BorrowedFd<'_>, deadline: Option<Instant>) -> Result<()> {
    frame::send_frame(sock, &[OPEN], &[])?;
    match receive(sock, deadline)? {
        hello if hello == OPEN => Ok(()),
        challenge if challenge.starts_with(CHALLENGE) => Err(Error::AuthenticationFailed),
        _ => Err(Error::protocol("malformed greeting")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_directions_proofs_differ_for_the_same_nonces() {
        let (a, b) = ([1u8; NONCE], [2u8; NONCE]);
        let client = proof(b"k", CLIENT_LABEL, &a, &b).finalize().into_bytes();
        let server = proof(b"k", SERVER_LABEL, &a, &b).finalize().into_bytes();
        let swapped = proof(b"k", CLIENT_LABEL, &b, &a).finalize().into_bytes();
        assert_ne!(client, server);
        assert_ne!(client, swapped);
    }
}
