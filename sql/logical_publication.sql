-- The publication of install --source logical (install.h): created for the
-- tables or, when it exists already, set to exactly these tables. Never dropped
-- and made again: pgoutput looks a publication up as of each change it decodes,
-- so a slot whose position lies before the publication was created fails with
-- "publication does not exist".
DO {{tag}}
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_publication
                WHERE pubname = {{publication_literal}}) THEN
        ALTER PUBLICATION {{publication}} SET TABLE {{tables}};
    ELSE
        CREATE PUBLICATION {{publication}} FOR TABLE {{tables}};
    END IF;
END
{{tag}};
