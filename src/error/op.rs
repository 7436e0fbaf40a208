//! The operations errors name (`get manifest`, `delete tag`, ...), for messages and retry logs.

/// The operation that failed, for messages and retry logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Ping,
    Auth,
    GetManifest,
    HeadManifest,
    PutManifest,
    HeadBlob,
    GetBlob,
    UploadBlob,
    MountBlob,
    ListTags,
    ListReferrers,
    ListRepositories,
    DeleteManifest,
    DeleteTag,
    ReadLayout,
    WriteLayout,
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Op::Ping => "ping",
            Op::Auth => "authenticate",
            Op::GetManifest => "get manifest",
            Op::HeadManifest => "check manifest",
            Op::PutManifest => "put manifest",
            Op::HeadBlob => "check blob",
            Op::GetBlob => "get blob",
            Op::UploadBlob => "upload blob",
            Op::MountBlob => "mount blob",
            Op::ListTags => "list tags",
            Op::ListReferrers => "list referrers",
            Op::ListRepositories => "list repositories",
            Op::DeleteManifest => "delete manifest",
            Op::DeleteTag => "delete tag",
            Op::ReadLayout => "read layout",
            Op::WriteLayout => "write layout",
        };
        f.write_str(s)
    }
}
