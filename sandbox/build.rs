//! Links the toolchain's libpython with an rpath (without it the binary silently loads the
//! system's libpython instead), and records the interpreter's prefix so the embedded interpreter
//! finds its standard library without consulting the environment.

use std::process::Command;

fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
    let config = pyo3_build_config::get();
    let executable = config
        .executable()
        .map(str::to_owned)
        .unwrap_or_else(|| "python3".to_owned());
    let output = Command::new(&executable)
        .args(["-c", "import sys; print(sys.base_prefix)"])
        .output()
        .expect("run the Python interpreter pyo3 builds against");
    assert!(
        output.status.success(),
        "{executable} failed to report sys.base_prefix"
    );
    let prefix = String::from_utf8(output.stdout).expect("utf-8 prefix");
    println!("cargo:rustc-env=MCPBOX_PYTHON_HOME={}", prefix.trim());
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    println!("cargo:rerun-if-changed=python/runtime.py");
}
