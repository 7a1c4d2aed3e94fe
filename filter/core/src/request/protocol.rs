//! What a request speaks, read from its `content-type`: plain HTTP, gRPC or
//! gRPC-Web. It decides how the response is judged.

/// What a request speaks, for judging its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Http,
    /// gRPC: the outcome is the `grpc-status`, in the trailers or in a
    /// trailers-only response.
    Grpc,
    /// gRPC-Web: the trailers travel in the body, which the filter does not
    /// read; only a trailers-only response has a `grpc-status` it sees.
    GrpcWeb,
}

impl Protocol {
    /// The protocol a request's `content-type` names.
    pub fn of(content_type: Option<&[u8]>) -> Protocol {
        match content_type.and_then(grpc_subtype) {
            Some(rest)
                if rest
                    .get(..4)
                    .is_some_and(|s| s.eq_ignore_ascii_case(b"-web")) =>
            {
                Protocol::GrpcWeb
            }
            Some(_) => Protocol::Grpc,
            None => Protocol::Http,
        }
    }

    pub fn is_grpc(self) -> bool {
        self != Protocol::Http
    }
}

/// What follows `application/grpc` in a request's `content-type` when it
/// makes the request a gRPC call (`application/grpc`, `application/grpc+proto`,
/// `application/grpc-web...`); `None` for any other content type.
pub fn grpc_subtype(content_type: &[u8]) -> Option<&[u8]> {
    const GRPC: &[u8] = b"application/grpc";
    let head = content_type.get(..GRPC.len())?;
    let rest = content_type.get(GRPC.len()..)?;
    let ends = matches!(rest.first(), None | Some(b'+' | b'-' | b';'));
    (head.eq_ignore_ascii_case(GRPC) && ends).then_some(rest)
}
