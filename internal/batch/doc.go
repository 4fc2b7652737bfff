// Package batch plans how records are split into batches and reads and writes batch_N.json files.
//
// A batch file is a JSON array of the batch's records, exactly as they were read from the input
// (CSV rows become objects of strings), one record per line. Batches are contiguous ranges of
// the input, so batch number order followed by position within a batch is input order.
//
// Two plans exist. Equal splits the input into N equal batches with the last taking the
// remainder, the design's static split. Guided is guided self-scheduling: each batch takes about
// remaining ÷ (2 × workers) records, at least MinSize, so early batches are large and the tail is
// fine-grained and no worker is left running alone at the end.
package batch
