//! One upload of many files holds a bounded number of file descriptors: its destination
//! folder is opened once and each scratch file is closed before the next part is read.
//! It once held the folder open again for every file, so one request could exhaust the
//! descriptors of the whole panel (every account's requests then failed with 500).
//!
//! This binary holds one test only: it lowers the process's descriptor limit.

mod common;

use actas_panel::pages::files::UPLOAD_FILES_MAX;
use common::{Panel, Part, Who};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors the upload may open on top of those already open (a folder, a scratch
/// file, a database connection or two): far fewer than the files it carries.
const HEADROOM: usize = 40;
// Otherwise the old code, one folder per file, could pass too.
const _: () = assert!(UPLOAD_FILES_MAX > 2 * HEADROOM);

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

#[tokio::test]
async fn an_upload_of_many_files_stays_within_a_few_descriptors() {
    let panel = Panel::start().await;
    let carl = Who::customer("carl");
    // Warm up: provisioning and the database connection open what they keep.
    panel.get(&carl, "/files").await;
    let names: Vec<String> = (0..UPLOAD_FILES_MAX).map(|i| format!("f{i}.txt")).collect();
    let mut parts = vec![Part::Text("path", "")];
    parts.extend(names.iter().map(|name| Part::File("file", name, b"x")));
    panel
        .upload(&carl, &parts[..2])
        .await
        .assert_redirect("/files");

    let before = getrlimit(Resource::Nofile);
    let limit = (open_descriptors() + HEADROOM) as u64;
    let limit = before.maximum.map_or(limit, |hard| limit.min(hard));
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(limit),
            maximum: before.maximum,
        },
    )
    .expect("lower the descriptor limit");
    let reply = panel.upload(&carl, &parts).await;
    setrlimit(Resource::Nofile, before).expect("restore the descriptor limit");

    reply.assert_redirect("/files?path=&notice=");
    for name in &names {
        assert!(panel.files_of("carl").join(name).is_file(), "{name}");
    }
}
