// Command etcdutl is upstream etcd's offline administration tool (snapshot
// restore and status, defrag, hashkv, migrate), built from the published
// go.etcd.io/etcd/etcdutl/v3 module. Upstream's command is the module's own
// root package (a package main, so not importable); this file mirrors its
// main.go and ctl.go (Apache-2.0, The etcd Authors) of the version pinned in
// go.mod, merged into one file.
package main

import (
	"github.com/spf13/cobra"

	"go.etcd.io/etcd/etcdutl/v3/etcdutl"
	"go.etcd.io/etcd/pkg/v3/cobrautl"
)

const (
	cliName        = "etcdutl"
	cliDescription = "An administrative command line tool for etcd3."
)

var rootCmd = &cobra.Command{
	Use:        cliName,
	Short:      cliDescription,
	SuggestFor: []string{"etcdutl"},
}

func init() {
	rootCmd.PersistentFlags().StringVarP(&etcdutl.OutputFormat, "write-out", "w", "simple", "set the output format (fields, json, protobuf, simple, table)")
	rootCmd.RegisterFlagCompletionFunc("write-out", func(_ *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		return []string{"fields", "json", "protobuf", "simple", "table"}, cobra.ShellCompDirectiveDefault
	})

	rootCmd.AddCommand(
		etcdutl.NewDefragCommand(),
		etcdutl.NewSnapshotCommand(),
		etcdutl.NewHashKVCommand(),
		etcdutl.NewVersionCommand(),
		etcdutl.NewCompletionCommand(),
		etcdutl.NewMigrateCommand(),
	)
}

func init() {
	cobra.EnablePrefixMatching = true
}

// Start runs the command line.
func Start() error {
	// Make help just show the usage
	rootCmd.SetHelpTemplate(`{{.UsageString}}`)
	return rootCmd.Execute()
}

func main() {
	if err := Start(); err != nil {
		cobrautl.ExitWithError(cobrautl.ExitError, err)
	}
}
