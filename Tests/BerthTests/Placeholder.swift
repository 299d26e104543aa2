import Testing

// Placeholder replaced by the issue that fills this module.
@Test func placeholder() {}
