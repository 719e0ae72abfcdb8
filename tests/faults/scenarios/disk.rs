//! The store's filesystem full: the store on a 4 MiB tmpfs that a filler file fills up while
//! the machine makes parts. Commits fail, the engine keeps its batch and retries; once space is
//! freed every part is counted and delivered. Needs root for `mount` (CI runs as root).

use crate::plant::{Options, Plant};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A small tmpfs mounted for the test, unmounted at drop.
struct SmallFs(PathBuf);

impl SmallFs {
    fn mount(at: &Path, size: &str) -> SmallFs {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a {size} tmpfs at {} failed ({}): the disk-full scenario needs root and \
             mount, as scripts/test.sh has in CI",
            at.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        SmallFs(at.to_path_buf())
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes until the filesystem says ENOSPC; returns the filler's path.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0xAAu8; 64 * 1024];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // Whatever fits in a single page is taken too.
    while let Ok(n) = f.write(&chunk[..512]) {
        if n == 0 {
            break;
        }
    }
    let _ = f.sync_all();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_filesystem_full_delays_events_and_loses_none() {
    let mnt = tempfile::Builder::new()
        .prefix("mes-edge-smallfs-")
        .tempdir()
        .unwrap();
    let fs = SmallFs::mount(mnt.path(), "4m");
    let opts = Options {
        store_dir: Some(fs.0.clone()),
        ..Options::default()
    };
    let mut plant = Plant::start("store filesystem full", opts).await;
    plant.order_step().await;
    plant.wait_replied().await;

    let filler = fill(&fs.0);
    plant.faults += 1;
    // Parts keep coming while nothing can be committed: three failed commits in a row, each
    // retrying the same batch, before the space comes back.
    plant.wait_logged("commit failed", 3).await;
    plant.assert_running();
    let log = plant.runtime.stderr();
    assert!(
        log.contains("commit failed") && log.contains("full"),
        "the runtime says why it cannot commit\n{}",
        plant.runtime.logs()
    );
    std::fs::remove_file(&filler).unwrap();
    // The reply is committed like any event: MOM has it once the store takes commits again.
    plant.order_step().await;
    plant.wait_replied().await;

    // Full again, and killed while full: what was not committed is still in the PLC's counter.
    let failed = plant.runtime.stderr().matches("commit failed").count();
    let filler = fill(&fs.0);
    plant.faults += 1;
    plant.wait_logged("commit failed", failed + 2).await;
    plant.kill_runtime();
    plant.restart_runtime();
    // The runtime started again on the full store and tried to commit what it read.
    let failed = plant.runtime.stderr().matches("commit failed").count();
    plant.wait_logged("commit failed", failed + 1).await;
    std::fs::remove_file(&filler).unwrap();
    plant.wait_fresh_events(3).await;

    plant.finish(2, None).await;
    drop(fs);
}
