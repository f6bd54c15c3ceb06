//! End-to-end tests of the `gridmint` binary: every test spawns real coordinator, provider and CLI
//! processes talking HTTP on 127.0.0.1, in its own temp dirs with its own `GRIDMINT_HOME`, and
//! checks results against answers computed independently in the test.

mod e2e;
mod support;
