//! `--image` files as codex can take them (PROTOCOL.md section 2): the file
//! named is the file attached, whatever its path holds. Codex splits every
//! image value on commas (`shot,1.png` would attach `shot` and `1.png`), so
//! a path with a comma is handed over as a private link without one,
//! in a folder of our own (0700) outside the workspace, removed when the
//! turn ends. Every other image is given by its absolute path.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::event::{ErrorCode, TurnError};

/// The images of one turn, as paths codex reads as one file each.
#[derive(Debug, Default)]
pub struct Images {
    pub paths: Vec<PathBuf>,
    /// Our folder of links, removed on drop.
    private_dir: Option<PathBuf>,
}

impl Drop for Images {
    fn drop(&mut self) {
        if let Some(dir) = &self.private_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Resolves each `--image` against the adapter's own working directory
/// (codex runs in the workspace) and checks it is a file.
pub fn prepare(named: &[PathBuf]) -> Result<Images, TurnError> {
    let mut images = Images::default();
    for (index, image) in named.iter().enumerate() {
        let path = match std::fs::canonicalize(image) {
            Ok(path) if path.is_file() => path,
            _ => {
                return Err(TurnError::new(
                    ErrorCode::Usage,
                    format!("--image {}: no such file", image.display()),
                ));
            }
        };
        if !path.as_os_str().as_bytes().contains(&b',') {
            images.paths.push(path);
            continue;
        }
        let dir = match &images.private_dir {
            Some(dir) => dir.clone(),
            None => {
                let dir = private_dir().map_err(|error| {
                    TurnError::new(
                        ErrorCode::Usage,
                        format!(
                            "--image {}: its path holds a comma, which codex would split, and a private folder for a link to it could not be made: {error}; rename the file",
                            image.display()
                        ),
                    )
                })?;
                images.private_dir = Some(dir.clone());
                dir
            }
        };
        let link = dir.join(link_name(index, &path));
        std::os::unix::fs::symlink(&path, &link).map_err(|error| {
            TurnError::new(
                ErrorCode::Usage,
                format!(
                    "--image {}: cannot link it as {}: {error}; rename the file so that its path holds no comma",
                    image.display(),
                    link.display()
                ),
            )
        })?;
        images.paths.push(link);
    }
    Ok(images)
}

/// The file's own name with its commas made underscores (the model sees
/// the name), after the image's number so that two never collide.
fn link_name(index: usize, path: &Path) -> OsString {
    let name = path.file_name().unwrap_or_default().as_bytes();
    let plain: Vec<u8> = name
        .iter()
        .map(|&b| if b == b',' { b'_' } else { b })
        .collect();
    let mut link = OsString::from(format!("{index}-"));
    link.push(OsString::from_vec(plain));
    link
}

/// A new folder only we can enter, under the system's temporary folder
/// when that is an absolute, comma-free path, else under /tmp.
fn private_dir() -> std::io::Result<PathBuf> {
    let temp = std::env::temp_dir();
    let base = if temp.is_absolute() && !temp.as_os_str().as_bytes().contains(&b',') {
        temp
    } else {
        PathBuf::from("/tmp")
    };
    let template = base.join("plexum-images-XXXXXX");
    let template = CString::new(template.into_os_string().into_vec())
        .map_err(|_| std::io::Error::other("the temporary folder's path holds a NUL"))?;
    let mut bytes = template.into_bytes_with_nul();
    // SAFETY: a writable NUL-terminated template ending in XXXXXX; mkdtemp
    // creates the folder with mode 0700.
    let made = unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) };
    if made.is_null() {
        return Err(std::io::Error::last_os_error());
    }
    bytes.pop();
    Ok(PathBuf::from(OsString::from_vec(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comma_path_becomes_a_private_link_that_goes_with_the_turn() {
        let dir = std::env::temp_dir().join(format!("plexum-images-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let plain = dir.join("plain.png");
        let comma = dir.join("shot,1.png");
        std::fs::write(&plain, "a").unwrap();
        std::fs::write(&comma, "b").unwrap();
        let images = prepare(&[plain.clone(), comma.clone()]).unwrap();
        assert_eq!(images.paths[0], std::fs::canonicalize(&plain).unwrap());
        let link = images.paths[1].clone();
        assert!(!link.as_os_str().as_bytes().contains(&b','), "{link:?}");
        assert!(link.ends_with("1-shot_1.png"), "{link:?}");
        assert_eq!(std::fs::read_to_string(&link).unwrap(), "b");
        let folder = link.parent().unwrap().to_path_buf();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&folder).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(images);
        assert!(!folder.exists());
        assert_eq!(
            prepare(&[dir.join("missing.png")]).unwrap_err().code,
            ErrorCode::Usage
        );
    }
}
