"""Video meetings: coaches' provider connections (Zoom, Google Meet, Jitsi), the meeting
that follows each video session, its join window and the attendance that feeds
settlement's meeting evidence (issue 12)."""
