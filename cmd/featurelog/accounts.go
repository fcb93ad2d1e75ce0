package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/client"
	"github.com/featurelog/featurelog/internal/dirlock"
)

// withStore runs fn on the data directory's account store, holding the
// directory lock so no server changes it meanwhile.
func withStore(data string, fn func(*auth.Store) error) error {
	lock, err := dirlock.Acquire(data, "featurelog service-account/access-control")
	if err != nil {
		return fmt.Errorf("%w\n(to change accounts on a running node, pass --server URL with an owner's --api-key)", err)
	}
	defer lock.Release()
	store, err := auth.OpenStore(filepath.Join(data, "accounts.json"))
	if err != nil {
		return err
	}
	return fn(store)
}

func serviceAccountCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "service-account", Short: "Create, list and delete service accounts (API keys)"}
	cmd.AddCommand(createAccountCmd(), deleteAccountCmd(), listAccountsCmd())
	return cmd
}

func createAccountCmd() *cobra.Command {
	var t target
	var name, desc string
	cmd := &cobra.Command{
		Use:     "create --name N [--description D]",
		Example: "  featurelog service-account create --name ingest --description \"writes clicks\" --data ./featurelog-data\n  featurelog service-account create --name reader --server http://127.0.0.1:8080 --api-key $OWNER_KEY",
		Short:   "Create a service account and print its API key once",
		RunE: func(cmd *cobra.Command, _ []string) error {
			key, id, err := createAccount(&t, name, desc)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Save this API Key - you will not be able to get it again.\nAPI Key: %s\nService Account ID: %s\n", key, id)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "account name (required)")
	cmd.Flags().StringVar(&desc, "description", "", "description")
	t.flags(cmd)
	return cmd
}

func createAccount(t *target, name, desc string) (key, id string, err error) {
	c, err := t.client()
	if err != nil {
		return "", "", err
	}
	if c != nil {
		res, err := c.CreateServiceAccount(context.Background(), name, desc)
		if err != nil {
			return "", "", err
		}
		return res.APIKey, res.ID, nil
	}
	err = withStore(t.data, func(s *auth.Store) error {
		var acct auth.Account
		key, acct, err = s.CreateAccount(name, desc)
		id = acct.ID
		return err
	})
	return key, id, err
}

func deleteAccountCmd() *cobra.Command {
	var t target
	var id string
	cmd := &cobra.Command{
		Use:     "delete --service-account ID",
		Example: "  featurelog service-account delete --service-account 01J9Z3K5Q8 --data ./featurelog-data",
		Short:   "Delete a service account, revoking its key at once",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := t.client()
			if err != nil {
				return err
			}
			if c != nil {
				err = c.DeleteServiceAccount(commandContext(cmd), id)
			} else {
				err = withStore(t.data, func(s *auth.Store) error { return s.DeleteAccount(id) })
			}
			if err == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "Deleted service account %s.\n", id)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&id, "service-account", "", "service account ID (required)")
	t.flags(cmd)
	return cmd
}

func listAccountsCmd() *cobra.Command {
	var t target
	var output string
	cmd := &cobra.Command{
		Use:     "list",
		Example: "  featurelog service-account list --data ./featurelog-data\n  featurelog service-account list --server http://127.0.0.1:8080 --api-key $OWNER_KEY --output json",
		Short:   "List service accounts and their roles",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			c, err := t.client()
			if err != nil {
				return err
			}
			var accts []client.ServiceAccount
			if c != nil {
				if accts, err = c.ListServiceAccounts(commandContext(cmd)); err != nil {
					return err
				}
			} else if err := withStore(t.data, func(s *auth.Store) error {
				for _, a := range s.Accounts() {
					roles := make(map[string]string, len(a.Roles))
					for ws, r := range a.Roles {
						roles[ws] = r.String()
					}
					accts = append(accts, client.ServiceAccount{ID: a.ID, Name: a.Name, Description: a.Description, CreatedAt: a.CreatedAt, Roles: roles})
				}
				return nil
			}); err != nil {
				return err
			}
			return printAccounts(cmd.OutOrStdout(), accts, output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	t.flags(cmd)
	return cmd
}

// printAccounts prints accounts as a table (ID, NAME, ROLES as
// workspace=role in workspace order, CREATED) or as JSON,
// {"service_accounts": [...]} of the client's ServiceAccount, the same
// on --data and --server.
func printAccounts(w io.Writer, accts []client.ServiceAccount, output string) error {
	if accts == nil {
		accts = []client.ServiceAccount{}
	}
	if output == "json" {
		return writeJSON(w, map[string]any{"service_accounts": accts})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tROLES\tCREATED")
	for _, a := range accts {
		roles := make([]string, 0, len(a.Roles))
		for _, ws := range slices.Sorted(maps.Keys(a.Roles)) {
			roles = append(roles, ws+"="+a.Roles[ws])
		}
		r := strings.Join(roles, ",")
		if r == "" {
			r = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.ID, a.Name, r, a.CreatedAt.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

func accessControlCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "access-control", Short: "Grant roles on workspaces"}
	var t target
	var role, ws, id string
	assign := &cobra.Command{
		Use:     "assign-role --role viewer|editor|owner --workspace W --service-account ID",
		Example: "  featurelog access-control assign-role --role editor --workspace ads --service-account 01J9Z3K5Q8 --data ./featurelog-data",
		Short:   "Grant a service account a role on a workspace",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := t.client()
			if err != nil {
				return err
			}
			if c != nil {
				err = c.AssignRole(commandContext(cmd), id, ws, role)
			} else {
				err = withStore(t.data, func(s *auth.Store) error {
					r, err := auth.ParseRole(role)
					if err != nil {
						return err
					}
					return s.AssignRole(id, ws, r)
				})
			}
			if err == nil {
				fmt.Fprintln(cmd.OutOrStdout(), "Successfully updated role.")
			}
			return err
		},
	}
	assign.Flags().StringVar(&role, "role", "", "viewer, editor or owner")
	assign.Flags().StringVar(&ws, "workspace", "", "workspace name")
	assign.Flags().StringVar(&id, "service-account", "", "service account ID")
	t.flags(assign)
	cmd.AddCommand(assign)
	return cmd
}
