//! Chunked, resumable uploads and ranged downloads of large blobs (issue 15: 30–70 MB
//! interpreters), against a real coordinator process.

use crate::support::*;
use api::Identity;
use bytes::Bytes;
use engine::Hash;

/// `n` bytes that do not repeat in any way a store could fold.
fn noise(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 32);
    let mut block = Hash::of(b"gridmint upload test").0;
    while out.len() < n {
        out.extend_from_slice(&block);
        block = Hash::of(&block).0;
    }
    out.truncate(n);
    out
}

/// A 70 MB blob — more than one request takes (`max_blob_bytes`, 64 MiB) — goes up in chunks
/// and comes back in ranged pieces, whole and verified.
#[test]
fn a_blob_larger_than_one_request_goes_up_in_chunks_and_comes_back_in_pieces() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let me = Identity::generate();
    let client = &c.http.client;
    let blob = Bytes::from(noise(70_000_000));
    let hash = w.block_on(client.put_blob(&me, blob.clone())).unwrap();
    assert_eq!(hash, Hash::of(&blob));
    let back = w.block_on(client.get_blob(hash)).unwrap();
    assert!(back == blob, "the blob came back different");
    // No upload is left open.
    let gone = w.block_on(client.upload_status(hash)).unwrap_err();
    assert_eq!(gone.status(), Some(404), "{gone}");

    // Each piece is verified as it arrives (BLAKE3 verified streaming): a byte damaged in the
    // coordinator's copy is caught in the piece that holds it, and nothing is returned.
    let path = c.data_dir.join("blobs").join(hash.to_hex());
    let mut damaged = std::fs::read(&path).unwrap();
    damaged[30_000_000] ^= 0x40;
    std::fs::write(&path, &damaged).unwrap();
    let e = w.block_on(client.get_blob(hash)).unwrap_err();
    assert!(e.to_string().contains("does not verify"), "{e}");
}

/// An upload interrupted after two chunks resumes where the coordinator's copy ends, from a
/// new client (a restarted requester); a chunk out of place is refused with where it should
/// start, another account may not write into it, a chunk past the declared size is refused,
/// and content that does not hash to the declared hash is refused at the end and dropped.
#[test]
fn an_upload_resumes_where_it_stopped_and_refuses_what_does_not_belong() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let me = Identity::generate();
    let client = &c.http.client;
    let blob = Bytes::from(noise(20_000_000));
    let hash = Hash::of(&blob);
    let size = blob.len() as u64;
    let chunk = 4_000_000u64;
    let piece = |from: u64| blob.slice(from as usize..(from + chunk).min(size) as usize);

    let opened = w.block_on(client.start_upload(&me, hash, size)).unwrap();
    assert_eq!(opened.received, 0);
    w.block_on(client.put_chunk(&me, hash, 0, piece(0)))
        .unwrap();
    let two = w
        .block_on(client.put_chunk(&me, hash, chunk, piece(chunk)))
        .unwrap();
    assert_eq!(two.received, 2 * chunk);

    // Out of place: a repeat of the first chunk, or one skipping ahead.
    for offset in [0, 3 * chunk] {
        let e = w
            .block_on(client.put_chunk(&me, hash, offset, piece(offset)))
            .unwrap_err();
        assert_eq!(e.status(), Some(409), "{e}");
        assert!(
            e.to_string().contains(&format!("holds {}", 2 * chunk)),
            "{e}"
        );
    }
    // Another account.
    let other = Identity::generate();
    let e = w
        .block_on(client.put_chunk(&other, hash, 2 * chunk, piece(2 * chunk)))
        .unwrap_err();
    assert_eq!(e.status(), Some(403), "{e}");
    let e = w
        .block_on(client.start_upload(&other, hash, size))
        .unwrap_err();
    assert_eq!(e.status(), Some(409), "{e}");
    // Past the declared size.
    let e = w
        .block_on(client.put_chunk(&me, hash, 2 * chunk, Bytes::from(vec![0u8; 13_000_000])))
        .unwrap_err();
    assert_eq!(e.status(), Some(400), "{e}");

    // A new client resumes: the coordinator holds two chunks; the rest completes the blob.
    let again = api::Client::new(&c.url);
    let status = w.block_on(again.upload_status(hash)).unwrap();
    assert_eq!((status.size, status.received), (size, 2 * chunk));
    let resumed = w.block_on(again.start_upload(&me, hash, size)).unwrap();
    assert_eq!(resumed.received, 2 * chunk);
    let mut at = resumed.received;
    while at < size {
        at = w
            .block_on(again.put_chunk(&me, hash, at, piece(at)))
            .unwrap()
            .received;
    }
    assert!(w.block_on(again.get_blob(hash)).unwrap() == blob);

    // A verified chunk (a bao slice) damaged on the way is refused before it is kept, and the
    // upload stays where it was; sent again whole, it lands.
    let blob2 = Bytes::from(noise(3_000_000));
    let hash2 = Hash::of(&blob2);
    let (outboard, _) = bao::encode::outboard(&blob2);
    let slice_of = |from: u64, len: u64| {
        let mut out = Vec::new();
        std::io::Read::read_to_end(
            &mut bao::encode::SliceExtractor::new_outboard(
                std::io::Cursor::new(&blob2[..]),
                std::io::Cursor::new(&outboard[..]),
                from,
                len,
            ),
            &mut out,
        )
        .unwrap();
        out
    };
    w.block_on(client.start_upload(&me, hash2, 3_000_000))
        .unwrap();
    let mut damaged = slice_of(0, 1_000_000);
    damaged[500_000] ^= 1;
    let e = w
        .block_on(client.put_verified_chunk(&me, hash2, 0, 1_000_000, Bytes::from(damaged)))
        .unwrap_err();
    assert_eq!(e.status(), Some(400), "{e}");
    assert!(e.to_string().contains("does not verify"), "{e}");
    assert_eq!(w.block_on(client.upload_status(hash2)).unwrap().received, 0);
    for from in [0, 1_000_000, 2_000_000] {
        w.block_on(client.put_verified_chunk(
            &me,
            hash2,
            from,
            1_000_000,
            Bytes::from(slice_of(from, 1_000_000)),
        ))
        .unwrap();
    }
    assert!(w.block_on(client.get_blob(hash2)).unwrap() == blob2);

    // Content that is not the declared blob: refused when it is complete, and dropped.
    let claimed = Hash::of(b"something else entirely");
    w.block_on(client.start_upload(&me, claimed, 10)).unwrap();
    let e = w
        .block_on(client.put_chunk(&me, claimed, 0, Bytes::from_static(b"0123456789")))
        .unwrap_err();
    assert_eq!(e.status(), Some(400), "{e}");
    assert!(e.to_string().contains("hashes to"), "{e}");
    let e = w.block_on(client.upload_status(claimed)).unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
    let e = w.block_on(client.get_blob(claimed)).unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
}

/// Nothing acknowledged is lost: chunks the coordinator answered survive its being killed, and
/// the upload resumes on the restarted coordinator where its copy ends; an upload's records
/// that do not add up are dropped at start, not served.
#[test]
fn acknowledged_chunks_survive_a_coordinator_restart() {
    let w = World::new();
    let mut c = w.coordinator(&[]);
    let me = Identity::generate();
    let blob = Bytes::from(noise(12_000_000));
    let hash = Hash::of(&blob);
    let size = blob.len() as u64;
    let chunk = 4_000_000u64;
    let piece = |from: u64| blob.slice(from as usize..(from + chunk).min(size) as usize);
    w.block_on(c.http.client.start_upload(&me, hash, size))
        .unwrap();
    w.block_on(c.http.client.put_chunk(&me, hash, 0, piece(0)))
        .unwrap();
    let two = w
        .block_on(c.http.client.put_chunk(&me, hash, chunk, piece(chunk)))
        .unwrap();
    assert_eq!(two.received, 2 * chunk);
    // A stray part file without its record, as a crash between two writes could leave.
    let stray = c
        .data_dir
        .join("uploads")
        .join(format!("{}.part", Hash::of(b"stray")));
    std::fs::write(&stray, b"half").unwrap();

    let (dir, port) = (c.data_dir.clone(), c.port);
    c.proc.kill();
    let c = w.coordinator_restart(&dir, port, &[]);
    let status = w.block_on(c.http.client.upload_status(hash)).unwrap();
    assert_eq!((status.size, status.received), (size, 2 * chunk));
    assert!(!stray.exists(), "a part file without its record is removed");
    // Only its account may go on; it resumes where the copy ends, and the blob is whole.
    let other = Identity::generate();
    let e = w
        .block_on(
            c.http
                .client
                .put_chunk(&other, hash, 2 * chunk, piece(2 * chunk)),
        )
        .unwrap_err();
    assert_eq!(e.status(), Some(403), "{e}");
    let resumed = w
        .block_on(c.http.client.start_upload(&me, hash, size))
        .unwrap();
    assert_eq!(resumed.received, 2 * chunk);
    w.block_on(
        c.http
            .client
            .put_chunk(&me, hash, 2 * chunk, piece(2 * chunk)),
    )
    .unwrap();
    assert!(w.block_on(c.http.client.get_blob(hash)).unwrap() == blob);
    let gone = w.block_on(c.http.client.upload_status(hash)).unwrap_err();
    assert_eq!(gone.status(), Some(404), "{gone}");
    assert_eq!(
        std::fs::read_dir(dir.join("uploads")).unwrap().count(),
        0,
        "nothing is left in the uploads directory"
    );
}

/// Ranges as HTTP has them: a piece, the rest from an offset, and one past the end refused.
#[test]
fn a_blob_is_served_in_ranges() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let me = Identity::generate();
    let blob = noise(1000);
    let hash = w
        .block_on(c.http.client.put_blob(&me, Bytes::from(blob.clone())))
        .unwrap();
    let http = reqwest::Client::new();
    let get = |range: &str| {
        let resp = w
            .block_on(
                http.get(format!("{}/v1/blobs/{hash}", c.url))
                    .header("range", range)
                    .send(),
            )
            .unwrap();
        let status = resp.status().as_u16();
        let content_range = resp
            .headers()
            .get("content-range")
            .map(|v| v.to_str().unwrap().to_string());
        let body = w.block_on(resp.bytes()).unwrap().to_vec();
        (status, content_range, body)
    };
    let (status, range, body) = get("bytes=10-19");
    assert_eq!((status, range.as_deref()), (206, Some("bytes 10-19/1000")));
    assert_eq!(body, &blob[10..20]);
    let (status, range, body) = get("bytes=990-");
    assert_eq!(
        (status, range.as_deref()),
        (206, Some("bytes 990-999/1000"))
    );
    assert_eq!(body, &blob[990..]);
    for bad in ["bytes=1000-", "bytes=20-10", "bytes=0-1,5-6", "items=0-1"] {
        let (status, ..) = get(bad);
        assert_eq!(status, 416, "{bad}");
    }

    // Verified slices: a piece that decodes against the hash, its blob's size said beside it;
    // and the typed refusals.
    let slice = |query: &str, of: Hash| {
        let resp = w
            .block_on(
                http.get(format!("{}/v1/blobs/{of}/slice?{query}", c.url))
                    .send(),
            )
            .unwrap();
        let status = resp.status().as_u16();
        let size = resp
            .headers()
            .get("x-blob-size")
            .map(|v| v.to_str().unwrap().to_string());
        (status, size, w.block_on(resp.bytes()).unwrap().to_vec())
    };
    let (status, size, body) = slice("start=100&len=50", hash);
    assert_eq!((status, size.as_deref()), (200, Some("1000")));
    let mut piece = Vec::new();
    std::io::Read::read_to_end(
        &mut bao::decode::SliceDecoder::new(&body[..], &bao::Hash::from(hash.0), 100, 50),
        &mut piece,
    )
    .unwrap();
    assert_eq!(piece, &blob[100..150]);
    let missing = Hash::of(b"no such blob");
    for (query, of, want) in [
        ("start=1000&len=1", hash, 416),
        ("start=x&len=1", hash, 400),
        ("len=1", hash, 400),
        ("start=0&len=1", missing, 404),
    ] {
        let (status, _, body) = slice(query, of);
        assert_eq!(status, want, "{query}: {}", String::from_utf8_lossy(&body));
        assert!(!error_body(&body).detail.is_empty(), "{query}");
    }
}
