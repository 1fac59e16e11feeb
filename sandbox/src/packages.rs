//! Installed PyPI packages a call may import. The origin installs each approved package into its
//! own directory under one packages directory (read-only to workers through Landlock); a request
//! grants a call some of those directories and their import names. This is the one check of a
//! grant: the directory must lie under the configured packages directory, and an import name
//! must be a plain top-level identifier that is neither private nor never-importable, so a grant
//! can widen neither the file system a call imports from nor the never-importable list.

use std::path::{Path, PathBuf};

use contract::sandbox::{NEVER_IMPORTABLE, PackageGrant};

/// The checked form of a request's grants.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Granted {
    /// Directories for the worker's import path, canonical.
    pub paths: Vec<String>,
    /// Import names that join the call's allowed modules.
    pub modules: Vec<String>,
}

/// Checks `grants` against the packages directory `root`. The message explains a refusal.
pub fn granted(root: Option<&Path>, grants: &[PackageGrant]) -> Result<Granted, String> {
    let mut granted = Granted::default();
    if grants.is_empty() {
        return Ok(granted);
    }
    let Some(root) = root else {
        return Err("this sandbox has no packages directory, so it cannot run packages".into());
    };
    let root = root
        .canonicalize()
        .map_err(|err| format!("the packages directory is unavailable: {err}"))?;
    for grant in grants {
        let path = package_dir(&root, &grant.path)?;
        for name in &grant.modules {
            check_import_name(name)?;
            if !granted.modules.contains(name) {
                granted.modules.push(name.clone());
            }
        }
        let path = path.to_string_lossy().into_owned();
        if !granted.paths.contains(&path) {
            granted.paths.push(path);
        }
    }
    Ok(granted)
}

/// `path` canonical, a directory strictly under `root` (symlinks resolved first, so a link out
/// of the packages directory is refused like a `..`).
fn package_dir(root: &Path, path: &str) -> Result<PathBuf, String> {
    let canonical = Path::new(path)
        .canonicalize()
        .map_err(|_| format!("the package directory {path:?} does not exist"))?;
    if canonical == root || !canonical.starts_with(root) || !canonical.is_dir() {
        return Err(format!(
            "the package directory {path:?} is not inside the packages directory"
        ));
    }
    Ok(canonical)
}

/// The system libraries a manylinux wheel's extension may link against (PEP 600's policy; all
/// else a wheel bundles in its own `<name>.libs`, under the packages directory). Loaded here in
/// the zygote, so a worker's `dlopen` of an extension finds them already mapped: Landlock gives
/// workers no read access to the system library directories.
const MANYLINUX_SYSTEM_LIBRARIES: &[&std::ffi::CStr] = &[
    c"libpthread.so.0",
    c"libdl.so.2",
    c"librt.so.1",
    c"libm.so.6",
    c"libutil.so.1",
    c"libgcc_s.so.1",
    c"libstdc++.so.6",
];

/// Called once in the zygote, before any worker is forked. A library that is missing is left
/// out (an extension needing it then fails to import, with Python's message).
pub fn preload_system_libraries() {
    for name in MANYLINUX_SYSTEM_LIBRARIES {
        // SAFETY: dlopen with a NUL-terminated name; the handle is kept for the process's life.
        unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    }
}

fn check_import_name(name: &str) -> Result<(), String> {
    let identifier = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !identifier || name.starts_with('_') {
        return Err(format!("{name:?} is not an importable package name"));
    }
    if NEVER_IMPORTABLE.contains(&name) {
        return Err(format!(
            "the module {name:?} can never be imported by tools"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(path: &Path, modules: &[&str]) -> PackageGrant {
        PackageGrant {
            path: path.to_string_lossy().into_owned(),
            modules: modules.iter().map(|m| (*m).to_owned()).collect(),
        }
    }

    #[test]
    fn grants_are_confined_to_the_packages_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("packages");
        let inside = root.join("six-1.17.0");
        std::fs::create_dir_all(&inside).unwrap();
        let outside = dir.path().join("elsewhere");
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();

        let ok = granted(Some(&root), &[grant(&inside, &["six"])]).unwrap();
        assert_eq!(ok.modules, ["six"]);
        assert_eq!(ok.paths.len(), 1);

        for path in [
            outside.clone(),
            root.clone(),
            root.join("link"),
            root.join("six-1.17.0/../../elsewhere"),
            root.join("missing"),
        ] {
            assert!(
                granted(Some(&root), &[grant(&path, &["six"])]).is_err(),
                "{path:?}"
            );
        }
        assert!(granted(None, &[grant(&inside, &["six"])]).is_err());
        assert_eq!(granted(None, &[]).unwrap(), Granted::default());
    }

    #[test]
    fn import_names_cannot_reach_private_or_never_importable_modules() {
        let dir = tempfile::tempdir().unwrap();
        let inside = dir.path().join("pkg");
        std::fs::create_dir_all(&inside).unwrap();
        for name in [
            "os",
            "_yaml",
            "yaml.constructor",
            "",
            "9lives",
            "a-b",
            "subprocess",
        ] {
            assert!(
                granted(Some(dir.path()), &[grant(&inside, &[name])]).is_err(),
                "{name:?}"
            );
        }
    }
}
