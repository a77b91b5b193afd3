// Package configs is the config file of the azimuth proxy: its Go types, the
// strict YAML loader, the one place defaults are applied, validation that
// reports every problem with its file and line, and a watcher that notices
// when the file is replaced. It imports nothing of ours; cmd/azimuth turns
// these types into the option structs of the packages that do the work.
//
// Loading is parse, then defaults, then path resolution, then validation:
//
//	cfg, err := configs.Load("/etc/azimuth/azimuth.yaml")
//	var errs *configs.Errors
//	if errors.As(err, &errs) {
//		for _, p := range errs.Problems { ... } // FILE:LINE: path: message
//	}
//
// Durations are time.Duration values written as strings ("300ms"); sizes
// are Size values written as strings ("64KiB"). A key that is present keeps
// the value the operator wrote, even zero, and is validated; only an absent
// key gets its default, so an invalid value is never silently replaced.
package configs
