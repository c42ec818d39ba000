// Package caps reads and lowers rstwatch's Linux capabilities, and says
// which ones a missing feature needs.
//
// It is the command's own policy (which capability each feature keeps, the
// note printed when process names are unavailable), so it lives with the
// command, under cmd/rstwatch/internal.
package caps
