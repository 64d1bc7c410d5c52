//! Whether a bootstrap socket really comes from our parent.

use std::os::fd::OwnedFd;

use crate::os;

/// Takes descriptor `raw`, named by the boot variable, if its other end is
/// held by our parent process, running our executable as our user.
///
/// On refusal, says why (completing "descriptor N ...").
pub(super) fn accept(raw: i32) -> Result<OwnedFd, String> {
    if (0..=2).contains(&raw) {
        return Err("is a standard stream".to_owned());
    }
    // Every check looks at the descriptor without taking it: if it is not
    // ours to take, it stays as it was (some other code of the program may
    // own it).
    let sock = os::borrow_inherited_fd(raw).ok_or("is not open")?;
    let peer = os::peer_credentials(sock)
        .map_err(|e| format!("is not a connected Unix stream socket ({e})"))?;
    let (uid, euid) = os::uids();
    if uid != euid {
        return Err("cannot be trusted: our real and effective user ids differ".to_owned());
    }
    if peer.uid != uid {
        return Err(format!("belongs to user {} rather than to us (user {uid})", peer.uid));
    }
    let parent = os::getppid();
    if peer.pid == 0 || peer.pid != parent {
        return Err(format!(
            "was made by process {} rather than by our parent (process {parent})",
            peer.pid
        ));
    }
    let ours = os::exe_identity().map_err(|e| format!("cannot be checked ({e})"))?;
    match os::process_exe_identity(parent) {
        Ok(theirs) if theirs == ours => {}
        Ok(_) => return Err("comes from a parent that runs another executable".to_owned()),
        Err(e) => return Err(format!("comes from a parent whose executable is unknown ({e})")),
    }
    // The parent may have died and its pid been reused since we looked.
    if os::getppid() != parent {
        return Err("comes from a parent that has just ended".to_owned());
    }
    os::adopt_inherited_fd(raw).ok_or_else(|| "is not open".to_owned())
}
