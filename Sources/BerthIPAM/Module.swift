/// BerthIPAM: placeholder replaced by the issue that fills this module.
public enum BerthIPAMModule {}
