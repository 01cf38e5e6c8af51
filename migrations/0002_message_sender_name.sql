-- The display name of a message's author: a group member's push name, or the
-- attendant's display name, so threads show who wrote what.
ALTER TABLE messages ADD COLUMN sender_name TEXT;
