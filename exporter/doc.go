// Package exporter wires usage-exporter's data path, and is the only
// package that imports its leaves (logparse, classify, tailer, dedup,
// litellm, quota, state).
//
// Lines flow one way. The tailer hands on batches of whole lines; the
// decoder (decode.go) parses them into events in one goroutine; the
// ingester (ingest.go) runs each event through three stages in another:
// the attributor classifies and prices it (attribute.go, users.go), the
// counter applies it to the series (count.go), and the ledger stage files
// the user's usage under its billing period in the quota store
// (ledger.go). LiteLLM's scrapes join the same stages (litellm.go).
//
// A pipeline (pipeline.go) is one configuration's tailer, decoder and
// ingester; a reload replaces it, carrying read positions and counters
// over. Checkpoints (checkpoint.go) are taken by the ingest goroutine and
// written by another; what a checkpoint holds is published to readers only
// once it is in the state file. Run (run.go) sets up what outlives
// pipelines (metrics, the quota store, HTTP) and serves until its context
// ends.
package exporter
