use super::*;

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "m2s-files-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn writes_replace_whole_files_and_leave_no_temporary_behind() {
    let dir = scratch("replace");
    let path = dir.join("m2s.prom");
    write_atomic(&path, b"first\n").unwrap();
    write_atomic(&path, b"second\n").unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "second\n");
    let names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["m2s.prom"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o044, 0o044, "readable by others: {mode:o}");
    }
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_failed_write_names_the_file_and_keeps_the_old_content() {
    let dir = scratch("fail");
    let path = dir.join("out.yaml");
    write_atomic(&path, b"old\n").unwrap();
    // A directory where the file should go: the rename fails.
    let blocked = dir.join("blocked");
    fs::create_dir(&blocked).unwrap();
    fs::write(blocked.join("x"), "x").unwrap();
    let err = write_atomic(&blocked, b"new\n").unwrap_err();
    assert!(format!("{err:#}").contains("blocked"), "{err:#}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "old\n");
    let left: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let missing = dir.join("no-such-dir/out.yaml");
    let err = write_atomic(&missing, b"x").unwrap_err();
    assert!(
        format!("{err:#}").contains("no-such-dir/out.yaml"),
        "{err:#}"
    );
    fs::remove_dir_all(dir).unwrap();
}
